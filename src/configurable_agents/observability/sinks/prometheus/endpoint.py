"""Serving the metrics: a standalone ``/metrics`` server, or an app to mount in yours.

Single-process mode exposes the sink's registry. Multi-process mode (gunicorn or uvicorn
workers) is prometheus-client's: with ``PROMETHEUS_MULTIPROC_DIR`` set before the
process starts, every worker writes its samples to files there and a scrape of any
worker's endpoint reads all of them (``MultiProcessCollector``), so one scrape shows the
sum of the workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    make_asgi_app,
    make_wsgi_app,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from configurable_agents.observability.sinks.prometheus.metrics import PrometheusMetrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # the variable prometheus-client reads

MetricsSource = Callable[[], PrometheusMetrics | None]


def multiprocess_dir() -> str | None:
    """The multi-process directory when that mode is on, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


class _Deferred(Collector):
    """Reads the families at scrape time, so an app mounted before any sink still works."""

    def __init__(self, source: MetricsSource, *, health_only: bool) -> None:
        self._source = source
        self._health_only = health_only

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        metrics = self._source()
        if metrics is None:
            return
        if not self._health_only:
            yield from metrics.registry.collect()
        # Exporter health is this (serving) process's pipelines: a custom collector's
        # values are not shared through the multi-process files.
        yield from metrics.health.collect()


def exposition_registry(source: MetricsSource) -> CollectorRegistry:
    """What a scrape reads: this process's families, or every worker's files."""
    registry = CollectorRegistry(auto_describe=False)
    mp_dir = multiprocess_dir()
    if mp_dir is not None:
        multiprocess.MultiProcessCollector(registry, path=mp_dir)
    registry.register(_Deferred(source, health_only=mp_dir is not None))
    return registry


def serve(source: MetricsSource, addr: str, port: int) -> Any:
    """Start a daemon-thread HTTP server for ``/metrics``; returns the server (``server_port``)."""
    server, _thread = start_http_server(port, addr=addr, registry=exposition_registry(source))
    return server


def wsgi_app(source: MetricsSource) -> Callable[..., Any]:
    return make_wsgi_app(exposition_registry(source))


def asgi_app(source: MetricsSource) -> Callable[..., Any]:
    return make_asgi_app(exposition_registry(source))
