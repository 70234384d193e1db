"""A real callback handler whose finished workflows go to an OTelSink (tests only).

TEMPORARY until the pipeline (issue #16) lands on main: the handler of this branch still
hands finished records to the MLflow exporter, so this swaps that exporter for a small
adapter doing what the pipeline will do (``on_start`` on the caller thread, then
WorkflowFacts -> ``sink.export``). After the merge, :func:`otel_handler` builds the
handler from config with ``otel.enabled: true`` instead; the tests call only this.
"""

from __future__ import annotations

import threading
from typing import Any

from configurable_agents.observability.capture.handler import MLflowCallbackHandler
from configurable_agents.observability.facts.assemble import AssembleOptions, Assembler
from configurable_agents.observability.facts.cost_estimator import PriceBook
from configurable_agents.observability.facts.workflow_facts import WorkflowFacts
from configurable_agents.observability.sinks.otel import OTelSink


class _SinkAdapter:
    def __init__(self, sink: OTelSink) -> None:
        self.sink = sink
        self.options = AssembleOptions()
        self.assembler = Assembler(PriceBook())
        self.lock = threading.Lock()
        self.errors: list[BaseException] = []

    def workflow_started(self, workflow: Any, handler: Any) -> None:
        self.sink.on_start(workflow, self.options)

    def workflow_finished(self, workflow: Any, handler: Any) -> None:
        with self.lock:
            plan = self.assembler.plan(workflow, self.options)
            self.sink.export(WorkflowFacts(workflow, plan, self.options, "otel-tests"))

    def record_internal_error(self, where: str, exc: BaseException) -> None:
        self.errors.append(exc)

    def flush(self, timeout: float) -> bool:
        return self.sink.flush(timeout)

    def close(self, timeout: float) -> bool:
        return self.sink.close(timeout)


def otel_handler(sink: OTelSink) -> MLflowCallbackHandler:
    handler = MLflowCallbackHandler({"enabled": True, "tracking_uri": "sqlite:///unused.db"})
    handler._exporter = _SinkAdapter(sink)  # type: ignore[assignment]
    return handler
