"""OTelSink: each finished workflow as OpenTelemetry spans, sent over OTLP by the SDK itself.

The sink owns a private ``TracerProvider`` (never the global one, never MLflow's), with
the SDK's ``BatchSpanProcessor`` in front of its OTLP exporter (``http/protobuf`` or
``grpc``), so the standard ``OTEL_*`` variables, batching, retry with backoff and the
bounded span queue are the SDK's, not ours. The app's own provider and instrumentation
are untouched: we only *read* its current span, once, on the caller thread.

Loss policy: an OTLP collector is not idempotent (a resent batch would duplicate spans),
so nothing is spooled or replayed. Spans the exporter could not deliver after its own
retries, or that the full span queue dropped, are counted in :meth:`OTelSink.span_stats`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from configurable_agents.config.otel_config import OTelConfig
from configurable_agents.observability.sinks.base import Sink
from configurable_agents.observability.sinks.otel.spans import SpanBuilder

if TYPE_CHECKING:
    from configurable_agents.observability.facts.model import WorkflowFacts, WorkflowStart

DEFAULT_SERVICE_NAME = "configurable-agents"
INSTRUMENTATION_NAME = "configurable_agents"
OTLP_TRACES_PATH = "/v1/traces"


class OTelSink(Sink):
    """Spans per workflow, node, model call and tool call (GenAI semantic conventions)."""

    name = "otel"
    # Building spans is quick; the SDK's BatchSpanProcessor is the bounded queue in front of
    # the exporter. A queue of ours as well would be the third after the pipeline's.
    inline_export = True

    def __init__(self, config: OTelConfig, *, exporter: SpanExporter | None = None) -> None:
        super().__init__()
        self.config = config
        self.queue_size = config.queue_size
        inner = exporter if exporter is not None else otlp_exporter(config)
        self._exporter = CountingExporter(inner)
        # The SDK's limits (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT...), read once: the span builder
        # keeps each span within them so none of our attributes is evicted.
        self._limits = SpanLimits()
        self._provider = TracerProvider(resource=service_resource(config), shutdown_on_exit=False,
                                        span_limits=self._limits)
        self._provider.add_span_processor(BatchSpanProcessor(self._exporter))
        self._tracer = self._provider.get_tracer(INSTRUMENTATION_NAME)
        self._lock = threading.Lock()
        self._emitted = 0
        self._closed = False

    # ---- caller thread ----------------------------------------------------------------------

    def on_start(self, start: WorkflowStart) -> None:
        """Remember the app's active span (a contextvar read) as the invocation's parent."""
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            start.sink_state[self.name] = context

    # ---- worker thread ----------------------------------------------------------------------

    def export(self, facts: WorkflowFacts) -> None:
        parent = facts.sink_state.get(self.name)
        builder = SpanBuilder(self._tracer, capture_content=self.config.capture_content,
                              max_attributes=self._limits.max_span_attributes)
        count = builder.emit(facts, parent if isinstance(parent, trace.SpanContext) else None)
        with self._lock:
            self._emitted += count
        self.counters.add("exported")

    def flush(self, timeout: float) -> bool:
        """True only when every span made so far was delivered (not merely handed on).

        The SDK's exporter may back off past ``timeout``; the sink worker bounds the
        wait (:mod:`..deadline`), and a late answer is False.
        """
        if not self._closed:
            self._provider.force_flush(int(timeout * 1000))
        with self._lock:
            emitted = self._emitted
        return self._exporter.delivered >= emitted

    def close(self, timeout: float) -> bool:
        if self._closed:
            return self.flush(timeout)  # idempotent, and still truthful
        flushed = self.flush(timeout)
        self._closed = True
        self._provider.shutdown()
        return flushed

    @property
    def up(self) -> bool:
        return self._exporter.up

    def span_stats(self) -> dict[str, int]:
        """Spans made, delivered, and lost (failed after the exporter's retries, or dropped
        from the full queue: ``lost`` counts both once the queue has drained)."""
        with self._lock:
            emitted = self._emitted
        delivered, failed = self._exporter.delivered, self._exporter.failed
        return {
            "emitted": emitted,
            "delivered": delivered,
            "failed": failed,
            "lost": max(0, emitted - delivered) if not self._exporter.busy else failed,
        }


class CountingExporter(SpanExporter):
    """Delegates to the SDK's OTLP exporter and counts what it delivered and what it lost."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.delivered = 0
        self.failed = 0
        self.up = True
        self.busy = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.busy = True
        try:
            result = self.inner.export(spans)
        except Exception:  # an exporter bug must not kill the SDK's worker thread
            result = SpanExportResult.FAILURE
        finally:
            self.busy = False
        if result is SpanExportResult.SUCCESS:
            self.delivered += len(spans)
            self.up = True
        else:
            self.failed += len(spans)
            self.up = False
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))

    def shutdown(self) -> None:
        self.inner.shutdown()


def otlp_protocol(config: OTelConfig) -> str:
    """The configured protocol, else the standard variables, else http/protobuf."""
    return (
        config.protocol
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()


def otlp_exporter(config: OTelConfig) -> SpanExporter:
    """The SDK's OTLP span exporter for the protocol; unset options fall back to ``OTEL_*``."""
    protocol = otlp_protocol(config)
    headers = dict(config.headers) or None
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=config.endpoint, headers=headers, timeout=config.timeout_s)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(
            endpoint=http_traces_url(config.endpoint), headers=headers, timeout=config.timeout_s
        )
    raise ValueError(
        f"unsupported OTLP protocol {protocol[:40]!r}; use 'http/protobuf' or 'grpc'"
    )


def http_traces_url(endpoint: str | None) -> str | None:
    """A base URL gets ``/v1/traces`` appended (as OTEL_EXPORTER_OTLP_ENDPOINT does)."""
    if endpoint is None:
        return None
    path = urlsplit(endpoint).path
    if path.rstrip("/").endswith(OTLP_TRACES_PATH):
        return endpoint
    return endpoint.rstrip("/") + OTLP_TRACES_PATH


def service_resource(config: OTelConfig) -> Resource:
    """The SDK's resource (``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``) + config on top."""
    attributes: dict[str, Any] = dict(config.resource_attributes)
    if config.service_name:
        attributes[SERVICE_NAME] = config.service_name
    resource = Resource.create(attributes)
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource
