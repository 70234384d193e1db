"""Tier 3: Prometheus metrics (OpenTelemetry GenAI names), exporter health, apps to mount.

Mount the process's metrics in your own server (single- or multi-process mode)::

    from configurable_agents.observability.sinks.prometheus import metrics_asgi_app
    app.mount("/metrics", metrics_asgi_app())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from configurable_agents.observability.sinks.prometheus.endpoint import (
    MULTIPROC_ENV,
    asgi_app,
    exposition_registry,
    multiprocess_dir,
    wsgi_app,
)
from configurable_agents.observability.sinks.prometheus.metrics import PrometheusMetrics
from configurable_agents.observability.sinks.prometheus.sink import (
    PrometheusSink,
    current_metrics,
    default_metrics,
)


def metrics_wsgi_app() -> Callable[..., Any]:
    """WSGI app for this process's metrics (every worker's in multi-process mode)."""
    return wsgi_app(current_metrics)


def metrics_asgi_app() -> Callable[..., Any]:
    """ASGI app for this process's metrics (every worker's in multi-process mode)."""
    return asgi_app(current_metrics)


__all__ = [
    "MULTIPROC_ENV",
    "PrometheusMetrics",
    "PrometheusSink",
    "current_metrics",
    "default_metrics",
    "exposition_registry",
    "metrics_asgi_app",
    "metrics_wsgi_app",
    "multiprocess_dir",
]
