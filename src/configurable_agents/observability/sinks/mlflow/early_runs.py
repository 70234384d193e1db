"""Parent runs created while a workflow still runs, so a long one is visible in MLflow.

A long workflow gets its parent run early (RUNNING, with host/pid heartbeat tags)
once it has run for ``EARLY_RUN_AFTER_S``, so it is visible while it runs; a short
one costs only a dict entry on the caller's thread. System metrics need the run at
once. The finished workflow's export completes the run (the writer checks it owns it).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from configurable_agents.observability.sinks.mlflow.experiments import experiment_for
from configurable_agents.observability.sinks.mlflow.plan import start_plan
from configurable_agents.observability.sinks.mlflow.system_metrics import SystemMetrics

if TYPE_CHECKING:
    from uuid import UUID

    from configurable_agents.observability.facts.model import WorkflowStart
    from configurable_agents.observability.sinks.mlflow.host import SinkHost

EARLY_RUN_AFTER_S = 2.0


class EarlyRuns:
    """Starts parent runs of long (or system-metered) workflows before they finish."""

    def __init__(self, sink: SinkHost) -> None:
        self._sink = sink
        # Workflows still running, for the early parent run: run id -> (start notice, since).
        self._running: dict[Any, tuple[WorkflowStart, float]] = {}
        # Early parent runs already created: LangChain run id -> (experiment id, run id).
        self._early: dict[Any, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self.system_metrics = SystemMetrics(sink.diagnostics)

    def on_start(self, start: WorkflowStart) -> None:
        config = self._sink.config
        if config.log_system_metrics:
            if not config.async_logging:
                self.start_run(start)  # sync mode accepts I/O on the caller
                return
            self._running[start.run_id] = (start, float("-inf"))
            self._sink.wake()
        elif config.async_logging:
            self._running[start.run_id] = (start, time.monotonic())

    def on_finish(self, run_id: UUID) -> None:
        self._running.pop(run_id, None)

    def take(self, run_id: Any) -> tuple[str | None, str | None]:
        """The (experiment id, run id) of this workflow's early run, handed to its export."""
        with self._lock:
            return self._early.pop(run_id, (None, None))

    def tick(self) -> None:
        if not self._running:
            return
        now = time.monotonic()
        for run_id, (start, since) in self._running.copy().items():
            if now - since >= EARLY_RUN_AFTER_S and self._running.pop(run_id, None):
                self.start_run(start)

    def start_run(self, start: WorkflowStart) -> None:
        sink = self._sink
        if not sink.breaker.up:
            return
        try:
            facts = start.describe()
            experiment = experiment_for(sink.config, facts, None)
            if experiment is None:
                return  # the finished workflow decides (quarantine or not logged)
            experiment_id = sink.writer.experiment_id(experiment)
            run_id = sink.writer.create_run(experiment_id, start_plan(facts))
            with self._lock:
                self._early[start.run_id] = (experiment_id, run_id)
            if sink.config.log_system_metrics:
                self.system_metrics.start(str(start.run_id), run_id, sink.writer.tracking_uri)
        except Exception as exc:
            sink.diagnostics.internal_error("export:start", exc)
