"""The observability set-ups a user could pick, behind one small interface.

Every mode is measured in the same process against the same sqlite store, interleaved
round by round, so machine noise hits all of them alike. A mode that cannot run here
(an optional package missing) says why through :attr:`Mode.skip_reason` and is reported
as skipped, never silently dropped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from benchmarks.workloads import Workload


class Mode:
    """One way of observing an invocation. Subclasses override what they need."""

    name: str = "mode"
    label: str = "mode"
    #: True when the mode writes to MLflow (so "time until persisted" means something).
    persists: bool = False
    #: Run this mode every ``stride``-th round only (its invocations are slow).
    stride: int = 1

    def __init__(self) -> None:
        self.skip_reason: str | None = None

    def applies_to(self, workload: Workload) -> bool:
        return True

    def open(self, store: str, experiment: str, workload: Workload) -> None:
        """Build per-workload state (handlers); called once before the rounds."""

    def activate(self) -> None:
        """Switch on process-global state (autolog patches, fluent experiment) for one call."""

    def deactivate(self) -> None:
        """Undo :meth:`activate` so the next mode runs clean."""

    def callbacks(self) -> list[Any]:
        return []

    def flush(self) -> None:
        """Block until everything this mode queued is persisted."""

    def close(self) -> None:
        """Release per-workload state."""


class NoCallbacks(Mode):
    name = "none"
    label = "no callbacks"


class NoopHandler(BaseCallbackHandler):
    """The cheapest possible handler: LangChain's dispatch cost and nothing else."""

    run_inline = True


class NoopMode(Mode):
    name = "noop"
    label = "no-op handler"

    def open(self, store: str, experiment: str, workload: Workload) -> None:
        self._handler = NoopHandler()

    def callbacks(self) -> list[Any]:
        return [self._handler]


class CountingHandler(BaseCallbackHandler):
    """Counts every callback LangChain delivers: the denominator of per-event cost."""

    run_inline = True

    def __init__(self) -> None:
        self.events = 0

    def _count(self, *args: Any, **kwargs: Any) -> None:
        self.events += 1

    on_chain_start = on_chain_end = on_chain_error = _count
    on_llm_start = on_chat_model_start = on_llm_end = on_llm_error = on_llm_new_token = _count
    on_tool_start = on_tool_end = on_tool_error = _count
    on_retriever_start = on_retriever_end = on_retriever_error = _count
    on_agent_action = on_agent_finish = on_text = on_retry = on_custom_event = _count


class OursMode(Mode):
    """configurable-agents' MLflowCallbackHandler (async, sync, or with PII redaction)."""

    persists = True

    def __init__(
        self,
        *,
        async_logging: bool = True,
        redact: bool = False,
        experiment_template: bool = False,
        sink: str | None = None,
        **config: Any,
    ):
        super().__init__()
        self.async_logging = async_logging
        self.redact = redact
        # "otel" or "prometheus": that sink on beside MLflow (caller overhead on vs off).
        self.sink = sink
        # A per-invocation experiment template no invocation satisfies: with
        # tenant_fail_closed the exporter discards every workflow (caller-cost isolation).
        self.experiment_template = experiment_template
        self.extra_config = config
        if sink is not None:
            self.name, self.label = f"ours_{sink}", f"ours, async + {sink} sink"
        elif redact:
            self.name, self.label = "ours_redact", "ours, async + redact_pii"
            try:
                from configurable_agents.observability.privacy.redaction import Redactor  # noqa: F401
            except Exception as exc:  # the module is written in parallel; skip, don't fail
                self.skip_reason = f"redaction.Redactor not importable ({type(exc).__name__})"
        elif async_logging:
            self.name, self.label = "ours_async", "ours, async"
        else:
            self.name, self.label = "ours_sync", "ours, sync"

    def make_handler(self, store: str, experiment: str, workflow_name: str) -> Any:
        from configurable_agents.config import MLFlowConfig
        from configurable_agents.observability import MLflowCallbackHandler

        config = MLFlowConfig(
            enabled=True,
            tracking_uri=store,
            experiment_name=experiment + "-{bench_unset_tenant}"
            if self.experiment_template
            else experiment,
            async_logging=self.async_logging,
            redact_pii=self.redact,
            **self.extra_config,
        )
        return MLflowCallbackHandler(
            self._with_sink(config),
            workflow_name=workflow_name,
            workflow_version="1.0.0",
            params={"global_model": "gemini-2.5-flash", "global_temperature": 0.7},
        )

    def _with_sink(self, mlflow_config: Any) -> Any:
        """The MLflow block alone, or with the OpenTelemetry or Prometheus sink beside it."""
        if self.sink is None:
            return mlflow_config
        from configurable_agents.config.schema import ObservabilityConfig

        if self.sink == "otel":
            from benchmarks.otlp_receiver import endpoint
            from configurable_agents.config.otel_config import OTelConfig

            return ObservabilityConfig(
                mlflow=mlflow_config,
                otel=OTelConfig(enabled=True, endpoint=endpoint(), protocol="http/protobuf"),
            )
        from configurable_agents.config.prometheus_config import PrometheusConfig

        return ObservabilityConfig(mlflow=mlflow_config, prometheus=PrometheusConfig(enabled=True))

    def open(self, store: str, experiment: str, workload: Workload) -> None:
        self.handler = self.make_handler(store, experiment, workload.name)

    def callbacks(self) -> list[Any]:
        return [self.handler]

    def flush(self) -> None:
        if not self.handler.flush(600):
            raise RuntimeError(f"{self.name}: flush timed out")

    def close(self) -> None:
        self.handler.close(600)


class AutologMode(Mode):
    """``mlflow.langchain.autolog()``: switched on and off around each call (global patches)."""

    name = "autolog"
    label = "mlflow.langchain.autolog()"
    persists = True

    def open(self, store: str, experiment: str, workload: Workload) -> None:
        self.experiment = experiment

    def activate(self) -> None:
        import mlflow

        mlflow.set_experiment(self.experiment)
        mlflow.langchain.autolog(silent=True)

    def deactivate(self) -> None:
        import mlflow

        mlflow.langchain.autolog(disable=True, silent=True)

    def flush(self) -> None:
        import mlflow

        mlflow.flush_trace_async_logging()


class CommunityMode(Mode):
    """langchain-community's ``MlflowCallbackHandler`` (one flat run, writes per event)."""

    name = "community"
    label = "langchain-community MlflowCallbackHandler"
    persists = True
    stride = 3

    def __init__(self) -> None:
        super().__init__()
        try:
            with _quiet():
                from langchain_community.callbacks import MlflowCallbackHandler  # noqa: F401
        except Exception as exc:
            self.skip_reason = (
                f"langchain-community not installed ({type(exc).__name__}); "
                "pip install 'configurable-agents[bench]'"
            )

    def open(self, store: str, experiment: str, workload: Workload) -> None:
        from langchain_community.callbacks import MlflowCallbackHandler

        with _quiet():
            self.handler = MlflowCallbackHandler(
                name=f"{workload.name}-%", experiment=experiment, tracking_uri=store
            )

    def callbacks(self) -> list[Any]:
        return [self.handler]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.handler.mlflg.mlflow.MlflowClient().set_terminated(self.handler.mlflg.run_id)


class FluentSketchHandler(BaseCallbackHandler):
    """The seed ADR's sketch: fluent ``mlflow.start_run(nested=True)`` per node, written inline.

    Only correct for sequential single-threaded graphs (the fluent run stack is
    thread-local), which is why it is measured on the 2-node article writer only.
    """

    run_inline = True

    def __init__(self, workflow_name: str) -> None:
        self.workflow_name = workflow_name
        self.root: UUID | None = None
        self.nodes: dict[UUID, dict[str, Any]] = {}
        self.current: dict[str, Any] | None = None
        self.totals = {"input": 0, "output": 0}
        self.started = 0.0

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        import mlflow

        if parent_run_id is None:
            self.root, self.started = run_id, time.perf_counter()
            self.totals = {"input": 0, "output": 0}
            self.inputs = inputs
            mlflow.start_run(run_name=self.workflow_name)
            mlflow.log_params({"workflow_name": self.workflow_name, "workflow_version": "1.0.0"})
            return
        node = (metadata or {}).get("langgraph_node")
        if node is not None and kwargs.get("name") == node:
            mlflow.start_run(run_name=f"node_{node}", nested=True)
            mlflow.log_params({"node_id": node, "node_model": "gemini-2.5-flash", "tools": "[]"})
            self.current = {"start": time.perf_counter(), "prompt": "", "response": "", "in": 0,
                            "out": 0}
            self.nodes[run_id] = self.current

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        if self.current is not None:
            self.current["prompt"] = str(messages)

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        if self.current is None:
            return
        message = response.generations[0][0].message
        usage = getattr(message, "usage_metadata", None) or {}
        self.current["response"] = str(message.content)
        self.current["in"] += usage.get("input_tokens", 0)
        self.current["out"] += usage.get("output_tokens", 0)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        import mlflow

        node = self.nodes.pop(run_id, None)
        if node is not None:
            mlflow.log_metrics(
                {
                    "node_duration_ms": (time.perf_counter() - node["start"]) * 1e3,
                    "input_tokens": node["in"],
                    "output_tokens": node["out"],
                    "retries": 0,
                }
            )
            mlflow.log_text(node["prompt"], "prompt.txt")
            mlflow.log_text(node["response"], "response.txt")
            mlflow.end_run()
            self.totals["input"] += node["in"]
            self.totals["output"] += node["out"]
            self.current = None
        elif run_id == self.root:
            mlflow.log_metrics(
                {
                    "duration_seconds": time.perf_counter() - self.started,
                    "total_input_tokens": self.totals["input"],
                    "total_output_tokens": self.totals["output"],
                    "node_count": 2,
                    "status": 1,
                }
            )
            mlflow.log_text(json.dumps(self.inputs, default=str), "inputs.json")
            mlflow.log_text(json.dumps(outputs, default=str), "outputs.json")
            mlflow.end_run()
            self.root = None


class FluentSketchMode(Mode):
    name = "fluent_sketch"
    label = "naive fluent MLflow (seed ADR sketch)"
    persists = True

    def applies_to(self, workload: Workload) -> bool:
        return workload.name == "article_writer"

    def open(self, store: str, experiment: str, workload: Workload) -> None:
        self.experiment = experiment
        self.handler = FluentSketchHandler(workload.name)

    def activate(self) -> None:
        import mlflow

        mlflow.set_experiment(self.experiment)

    def callbacks(self) -> list[Any]:
        return [self.handler]


@contextlib.contextmanager
def _quiet() -> Any:
    """langchain-community warns about spacy/textstat and its own sunset on every import."""
    import warnings

    logger = logging.getLogger("langchain_community")
    level = logger.level
    logger.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logger.setLevel(level)


def all_modes() -> list[Mode]:
    """Every mode of the latency benchmark, in report order."""
    return [
        NoCallbacks(),
        NoopMode(),
        OursMode(async_logging=True),
        OursMode(async_logging=False),
        OursMode(async_logging=True, redact=True),
        OursMode(async_logging=True, sink="otel"),
        OursMode(async_logging=True, sink="prometheus"),
        AutologMode(),
        FluentSketchMode(),
        CommunityMode(),
    ]
