"""Which sinks a config enables: the one place that knows every sink.

Each sink is imported only when enabled, so a disabled one costs nothing (not even
its library's import) and the handler imports neither MLflow nor OpenTelemetry
until they are used.
"""

from __future__ import annotations

import importlib

from configurable_agents.config.pipeline_config import PipelineConfig
from configurable_agents.config.schema import MLFlowConfig, ObservabilityConfig
from configurable_agents.observability.sinks.base import Sink

# Online evaluation runs the evaluation package's scorers, and evaluation is built on this
# package's public handler: the online-evaluation sink lives above both
# (configurable_agents.online_eval) and is loaded by name, only when enabled, so the
# observability layer keeps no import of it (and of LangChain models or the judge).
ONLINE_EVAL_MODULE = "configurable_agents.online_eval.sink"


def build_sinks(config: ObservabilityConfig, settings: PipelineConfig) -> list[Sink]:
    """The enabled sinks, in the order they receive each workflow."""
    sinks: list[Sink] = []
    mlflow = config.mlflow
    if mlflow is not None and mlflow.enabled:
        from configurable_agents.observability.sinks.mlflow.sink import MlflowSink

        # The pipeline's queueing settings, wherever they were written.
        sinks.append(MlflowSink(mlflow.model_copy(update={
            "async_logging": settings.async_logging, "queue_size": settings.queue_size,
        })))
    if config.jsonl is not None and config.jsonl.enabled:
        from configurable_agents.observability.sinks.jsonl import JsonlSink

        sinks.append(JsonlSink(config.jsonl))
    if config.otel is not None and config.otel.enabled:
        from configurable_agents.observability.sinks.otel import OTelSink

        sinks.append(OTelSink(config.otel))
    if config.prometheus is not None and config.prometheus.enabled:
        from configurable_agents.observability.sinks.prometheus import PrometheusSink

        sinks.append(PrometheusSink(config.prometheus))
    if config.online_eval is not None and config.online_eval.enabled:
        module = importlib.import_module(ONLINE_EVAL_MODULE)
        cap = config.prometheus.max_label_values if config.prometheus is not None else 50
        sinks.append(module.OnlineEvalSink(config.online_eval, mlflow or MLFlowConfig(),
                                           prometheus_cap=cap))
    return sinks
