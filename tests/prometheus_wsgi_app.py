"""A WSGI app for the multi-process test, run by gunicorn with two workers.

``/invoke`` runs the real ``qa`` graph with a handler built from config (Prometheus
sink on, no port of its own) and answers with the worker's pid; ``/metrics`` is the
mounted metrics app, which in multi-process mode (``PROMETHEUS_MULTIPROC_DIR``)
reads every worker's samples.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from configurable_agents.observability.sinks.prometheus import metrics_wsgi_app
from tests.prometheus_graphs import invoke, prometheus_handler, qa_graph

WORKFLOW = os.environ.get("CA_TEST_WORKFLOW", "mp-qa")

handler = prometheus_handler()
graph = qa_graph()
metrics_app = metrics_wsgi_app()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/metrics":
        return metrics_app(environ, start_response)
    if environ.get("PATH_INFO") == "/invoke":
        time.sleep(0.3)  # keeps this worker busy so the other takes the next request
        invoke(graph, handler, WORKFLOW)
        handler.flush(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
