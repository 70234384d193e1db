"""A WSGI app for the multi-process test, run by gunicorn with two workers.

``/invoke`` records one workflow through this worker's Prometheus sink and answers
with the worker's pid; ``/metrics`` is the mounted metrics app, which in multi-process
mode (``PROMETHEUS_MULTIPROC_DIR``) reads every worker's samples.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from configurable_agents.config.prometheus_config import PrometheusConfig
from configurable_agents.observability.sinks.prometheus import PrometheusSink, metrics_wsgi_app
from tests.test_prometheus_sink import make_facts

WORKFLOW = os.environ.get("CA_TEST_WORKFLOW", "mp-qa")

sink = PrometheusSink(PrometheusConfig(enabled=True))
metrics_app = metrics_wsgi_app()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/metrics":
        return metrics_app(environ, start_response)
    if environ.get("PATH_INFO") == "/invoke":
        time.sleep(0.3)  # keeps this worker busy so the other takes the next request
        sink.export(make_facts(WORKFLOW))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
