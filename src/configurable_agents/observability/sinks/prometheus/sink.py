"""The Prometheus sink: counts each finished workflow into process-wide metric families.

Metrics are in-memory counters and histograms, so :meth:`PrometheusSink.export` has
nothing to retry or spool; it runs on the sink's own worker like every sink, so the
caller's thread never touches a metric. One set of families serves the whole process
(one process is one Prometheus target), shared by every handler that enables the sink.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, ClassVar

from configurable_agents.config.prometheus_config import PrometheusConfig
from configurable_agents.observability.sinks.base import Sink
from configurable_agents.observability.sinks.prometheus import endpoint
from configurable_agents.observability.sinks.prometheus.metrics import PrometheusMetrics

if TYPE_CHECKING:
    from configurable_agents.observability.facts.model import WorkflowFacts

logger = logging.getLogger(__name__)

_default: PrometheusMetrics | None = None
_default_lock = threading.Lock()


def default_metrics(attribution_labels: tuple[str, ...] = (),
                    max_series: int = 5_000) -> PrometheusMetrics:
    """The process's metric families, made by the first sink that asks (its series bound)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PrometheusMetrics(attribution_labels=attribution_labels,
                                         max_series=max_series)
        elif _default.attribution_labels != attribution_labels:
            logger.warning(
                "prometheus: attribution_labels %s differ from this process's first sink "
                "(%s); a metric's labels cannot change, so the first set is kept",
                list(attribution_labels),
                list(_default.attribution_labels),
            )
        return _default


def current_metrics() -> PrometheusMetrics | None:
    """The process's families if a sink has made them (what a mounted app serves)."""
    return _default


class PrometheusSink(Sink):
    """Counters and histograms for scraping; see docs/sinks/prometheus.md for every metric."""

    name: ClassVar[str] = "prometheus"

    def __init__(self, config: PrometheusConfig, metrics: PrometheusMetrics | None = None) -> None:
        super().__init__()
        self.config = config
        self.queue_size = config.queue_size
        self.metrics = metrics or default_metrics(tuple(config.attribution_labels),
                                                  config.max_series)
        self._known = frozenset(config.workflows)
        self.metrics.health.watch(self)
        self._server: Any = None
        if config.port is not None:
            self._start_server(config.addr, config.port)

    @property
    def port(self) -> int | None:
        """The standalone endpoint's port (useful with ``port: 0``), None when not serving."""
        return int(self._server.server_port) if self._server is not None else None

    def _source(self) -> PrometheusMetrics:
        return self.metrics

    def export(self, facts: WorkflowFacts) -> None:
        self.metrics.observe(facts, cap=self.config.max_label_values, known=self._known,
                             metadata_names=self.config.metadata_workflow_names)
        self.counters.add("exported")

    def wsgi_app(self) -> Any:
        """A WSGI app serving the metrics (mount it at ``/metrics``)."""
        return endpoint.wsgi_app(self._source)

    def asgi_app(self) -> Any:
        """An ASGI app serving the metrics (``app.mount("/metrics", sink.asgi_app())``)."""
        return endpoint.asgi_app(self._source)

    def close(self, timeout: float) -> bool:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self.metrics.health.forget(self)
        return True

    def _start_server(self, addr: str, port: int) -> None:
        try:
            self._server = endpoint.serve(self._source, addr, port)
        except OSError as exc:
            # In multi-process mode the first worker to bind serves every worker's files.
            level = logging.INFO if endpoint.multiprocess_dir() else logging.WARNING
            logger.log(
                level, "prometheus: not serving /metrics on %s:%s (%s)", addr, port, exc
            )
