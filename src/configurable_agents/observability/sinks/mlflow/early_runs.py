"""Parent runs created while a workflow still runs, so a long one is visible in MLflow.

A long workflow gets its parent run early (RUNNING, with host/pid heartbeat tags)
once it has run for ``EARLY_RUN_AFTER_S``, so it is visible while it runs; a short
one costs only a dict entry on the caller's thread. System metrics need the run at
once. The finished workflow's export completes the run (the writer checks it owns it).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from configurable_agents.observability.capture.records import WorkflowRecord
from configurable_agents.observability.facts.assemble import AssembleOptions, Assembler
from configurable_agents.observability.sinks.mlflow.system_metrics import SystemMetrics

if TYPE_CHECKING:
    from configurable_agents.observability.sinks.mlflow.sink import MlflowSink

EARLY_RUN_AFTER_S = 2.0


class EarlyRuns:
    """Starts parent runs of long (or system-metered) workflows before they finish."""

    def __init__(self, sink: MlflowSink) -> None:
        self._sink = sink
        # Workflows still running: run id -> (record, options, since).
        self._running: dict[Any, tuple[WorkflowRecord, AssembleOptions, float]] = {}
        self.system_metrics = SystemMetrics(sink.diagnostics)

    def on_start(self, workflow: WorkflowRecord, options: AssembleOptions) -> None:
        config = self._sink.config
        if config.log_system_metrics:
            if not config.async_logging:
                self.start_run(workflow, options)  # sync mode accepts I/O on the caller
                return
            self._running[workflow.run_id] = (workflow, options, float("-inf"))
            self._sink.wake()
        elif config.async_logging:
            self._running[workflow.run_id] = (workflow, options, time.monotonic())

    def on_finish(self, workflow: WorkflowRecord) -> None:
        self._running.pop(workflow.run_id, None)

    def tick(self) -> None:
        if not self._running:
            return
        now = time.monotonic()
        for run_id, (workflow, options, since) in self._running.copy().items():
            if now - since >= EARLY_RUN_AFTER_S and self._running.pop(run_id, None):
                self.start_run(workflow, options)

    def start_run(self, workflow: WorkflowRecord, options: AssembleOptions) -> None:
        sink = self._sink
        if not sink.breaker.up:
            return
        try:
            from configurable_agents.observability.privacy.tenancy import (
                TenantError,
                resolve_experiment_name,
            )

            try:
                experiment = resolve_experiment_name(sink.config.experiment_name,
                                                     workflow.metadata)
            except TenantError:
                return  # the finished workflow decides (quarantine or not logged)
            experiment_id = sink.writer.experiment_id(experiment)
            options = sink.prepare_options(options)
            plan = Assembler.start_plan(workflow, options)
            if options.redact is not None:
                plan.tags = {k: options.redact(v) for k, v in plan.tags.items()}
                plan.run_name = options.redact(plan.run_name)
            workflow.experiment_id = experiment_id
            workflow.mlflow_run_id = sink.writer.create_run(experiment_id, plan)
            if sink.config.log_system_metrics:
                self.system_metrics.start(workflow, sink.writer.tracking_uri)
        except Exception as exc:
            sink.diagnostics.internal_error("export:start", exc)
