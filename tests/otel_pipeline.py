"""A real callback handler whose one sink is a given OTelSink (MLflow off).

Goes through the production path: the handler's pipeline builds WorkflowFacts once
and hands them to the sink's own worker; ``handler.flush()`` reaches the sink's
batch processor through the sink protocol.
"""

from __future__ import annotations

from configurable_agents.config.schema import ObservabilityConfig
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.sinks.otel import OTelSink


def otel_handler(sink: OTelSink) -> MLflowCallbackHandler:
    return MLflowCallbackHandler(ObservabilityConfig(), sinks=[sink])
