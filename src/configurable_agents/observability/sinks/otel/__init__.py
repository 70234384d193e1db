"""OpenTelemetry sink: GenAI-convention spans over OTLP, joined to the app's own traces."""

from configurable_agents.observability.sinks.otel.sink import OTelSink

__all__ = ["OTelSink"]
