"""The MLflow sink: runs (parent + nested) and the linked trace, exactly once.

The promise is that every finished workflow reaches MLflow exactly once. This class
writes a workflow and decides what happens when that fails; each other job has its
own class:

- :mod:`.client`: our writer's retries (one request per call, a time budget, creates
  looked up by identity tag after an unknown outcome, so a lost response never makes
  a second run);
- :mod:`.breaker`: after a failed write, skip MLflow until a cheap probe finds it;
- :mod:`.spooling`: the spool (one owner per workflow, in-flight handoffs on exit);
- :mod:`.drain`: replaying the spool on idle workers and in ``flush``;
- :mod:`.rollup_writer`: rollup runs of sampled-out workflows;
- :mod:`.early_runs`: parent runs of long workflows while they run (+ system metrics);
- :mod:`.traces`: the trace, after its runs, on the same worker (it links to the
  parent run's id); a trace failure is counted and never loses the runs.

With ``export_workers`` > 1 several worker threads export at once, each workflow
whole on one thread (its runs, then its trace).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from configurable_agents.config.schema import MLFlowConfig
from configurable_agents.observability.sinks.base import Sink
from configurable_agents.observability.sinks.mlflow.breaker import Breaker
from configurable_agents.observability.sinks.mlflow.drain import Drainer
from configurable_agents.observability.sinks.mlflow.early_runs import EarlyRuns
from configurable_agents.observability.sinks.mlflow.experiments import experiment_for
from configurable_agents.observability.sinks.mlflow.plan import PlanOptions, RunPlan, plan_for
from configurable_agents.observability.sinks.mlflow.rejection import is_rejection
from configurable_agents.observability.sinks.mlflow.rollup_writer import RollupWriter
from configurable_agents.observability.sinks.mlflow.spooling import SpoolKeeper
from configurable_agents.observability.sinks.spool import Spool, spool_dir_for

if TYPE_CHECKING:
    from pathlib import Path
    from uuid import UUID

    from configurable_agents.observability.facts.model import WorkflowFacts, WorkflowStart
    from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter

RETRY_PASSES = 2  # whole-tree passes after the first; every call is retried by the writer
MAX_REMEMBERED_RUN_IDS = 10_000


class MlflowSink(Sink):
    """Writes each workflow's runs and trace to one tracking URI."""

    name = "mlflow"

    def __init__(self, config: MLFlowConfig) -> None:
        super().__init__()
        self.config = config
        self.queue_size = config.queue_size
        self.workers = config.resolved_export_workers
        self.plan_options = PlanOptions.from_config(config)
        self.breaker = Breaker()
        self.keeper = SpoolKeeper(self, Spool(spool_dir_for(config.tracking_uri,
                                                            config.spool_dir),
                                              max_bytes=config.spool_max_bytes))
        self.spool = self.keeper.spool
        self.drainer = Drainer(self, self.keeper)
        self.rollup_writer = RollupWriter(self, self.keeper, config.rollup_bucket_s)
        self.rollups = self.rollup_writer.accumulator
        self.early = EarlyRuns(self)
        self._writer: MlflowWriter | None = None
        self._ready_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._run_ids: dict[str, str] = {}
        self.last_run_id: str | None = None
        self.closing = False  # set by begin_close: late traces are written, not batched
        _import_mlflow_here(config.log_traces)

    @property
    def up(self) -> bool:
        return self.breaker.up

    @property
    def writer(self) -> MlflowWriter:
        if self._writer is None:
            with self._ready_lock:
                if self._writer is None:
                    from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter

                    self._writer = MlflowWriter(
                        self.config.tracking_uri,
                        request_timeout_s=self.config.request_timeout_s,
                        retry_budget_s=self.config.retry_budget_s,
                    )
        return self._writer

    def run_id_for(self, langchain_run_id: str) -> str | None:
        return self._run_ids.get(langchain_run_id)

    # ---- caller thread (O(1)) and idle ticks ---------------------------------------------------

    def on_start(self, start: WorkflowStart) -> None:
        self.early.on_start(start)

    def on_finish(self, run_id: UUID) -> None:
        self.early.on_finish(run_id)

    def tick(self) -> None:
        self.early.tick()
        self.rollup_writer.write_due(everything=False)
        self._send_traces(timeout=None)
        self.drainer.maybe_drain()

    # ---- export (worker thread) ---------------------------------------------------------------

    def encode(self, facts: WorkflowFacts, *, count: bool = True) -> tuple[str, RunPlan] | None:
        """The experiment and run plan of ``facts``; None when its tenant is refused."""
        experiment = experiment_for(self.config, facts, self.diagnostics if count else None)
        if experiment is None:
            if count:
                self.counters.add("dropped")
            return None
        return experiment, plan_for(facts, self.plan_options)

    def export(self, facts: WorkflowFacts) -> None:
        self.early.system_metrics.stop(facts.langchain_run_id)
        key = facts.langchain_run_id
        encoded = self.encode(facts)
        if encoded is None:
            self.keeper.end(key, landed=True)  # a journal copy of a refused tenant goes too
            return
        if facts.sampled_out:  # written per bucket by tick/flush
            self.rollup_writer.add(facts, *encoded, self.keeper.take_journal(key))
            return
        self.keeper.begin(key)
        spool_reason: str | None = None
        early = self.early.take(facts.run_id)
        try:
            spool_reason = self._write(facts, *encoded, early)
        except Exception as exc:  # kept here, so a spilled copy is never spooled twice
            self.diagnostics.internal_error("mlflow:export", exc)
            spool_reason = f"export raised {type(exc).__name__}"
        finally:
            handed_back = self.keeper.end(key, landed=spool_reason is None)
        if spool_reason is not None and not handed_back:  # the replay completes the early run
            self.keeper.put(facts, spool_reason, encoded=encoded, early_run_id=early[1])

    def _write(self, facts: WorkflowFacts, experiment: str, plan: RunPlan,
               early: tuple[str | None, str | None]) -> str | None:
        """Write one workflow; None when it landed (or was set aside), else why to spool it."""
        if not self.breaker.up and not (self.breaker.probe_due() and self.probe()):
            return "MLflow unreachable"
        early_experiment_id, early_run_id = early
        plan.tags.update(self.trace_tags(facts))  # with the runs: one backend call less
        refused = 0
        for attempt in range(RETRY_PASSES + 1):
            try:
                experiment_id = early_experiment_id or self.writer.experiment_id(experiment)
                run_id = self.writer.write_tree(
                    experiment_id, plan, early_run_id,
                    idempotent=attempt > 0, langchain_run_id=facts.langchain_run_id,
                )
            except Exception as exc:
                if is_rejection(exc):
                    refused += 1  # MLflow refused the data, it is not down
                    if refused > 1 or attempt == RETRY_PASSES:
                        self.keeper.set_aside(experiment, facts, plan, exc)
                        return None
                    # Its experiment may have been deleted since we cached its id: look
                    # it up again (restored or recreated), then once more. The early run
                    # is kept when its experiment is the same one (a run deleted under us
                    # stays refused: set aside, not silently re-created).
                    self.writer.forget_experiment(experiment)
                    if self.writer.experiment_id(experiment) != early_experiment_id:
                        early_experiment_id = early_run_id = None
                    continue
                self.diagnostics.warn_once(
                    f"export:{type(exc).__name__}",
                    "MLflow write failed (%s: %s); retrying, then spooling to %s",
                    type(exc).__name__, self.diagnostics.scrub(str(exc)), self.spool.directory,
                )
                if not self.probe():
                    break
                continue
            self._exported_ok(facts.langchain_run_id, run_id)
            self._write_trace(facts, plan, run_id, (experiment, experiment_id))
            return None
        self.breaker.trip()
        return "MLflow write failed"

    def trace_tags(self, facts: WorkflowFacts) -> dict[str, str]:
        if not self.config.log_traces:
            return {}
        from configurable_agents.observability.sinks.mlflow.traces import trace_run_tags

        return trace_run_tags(facts)

    def _write_trace(self, facts: WorkflowFacts, plan: RunPlan, run_id: str,
                     experiment: tuple[str, str]) -> None:
        """The trace after its runs (spans batched); a failure is counted, the runs are safe."""
        if self.config.log_traces:
            from configurable_agents.observability.sinks.mlflow.trace_shipping import write_trace
            write_trace(self, facts, plan, run_id, experiment)

    def _send_traces(self, timeout: float | None) -> bool:  # spans batched by trace_shipping
        from configurable_agents.observability.sinks.mlflow.trace_shipping import send_traces
        return send_traces(self._writer if self.config.log_traces else None, self.diagnostics,
                           timeout)

    def begin_close(self) -> None:
        self.closing = True

    def take_journal(self, langchain_run_id: str) -> Path | None:  # kept until spans land
        return self.keeper.take_journal(langchain_run_id)

    def spooled_for_replay(self, count: int) -> None:  # a failed span batch (trace_shipping)
        self.keeper.maybe_nonempty = True
        self.counters.add("spooled", count)

    def _exported_ok(self, langchain_run_id: str, run_id: str) -> None:
        self.breaker.reset()
        self.counters.add("exported")
        self.last_run_id = run_id
        with self._state_lock:
            self._run_ids[langchain_run_id] = run_id
            if len(self._run_ids) > MAX_REMEMBERED_RUN_IDS:
                self._run_ids.pop(next(iter(self._run_ids)), None)

    def probe(self) -> bool:
        """Is the backend answering? Cheap: /health for servers, one query for databases."""
        try:
            ok = self.writer.ping()
        except Exception:
            ok = False
        if ok:
            self.breaker.reset()
        else:
            self.breaker.trip()
        return ok

    # ---- spill / flush ------------------------------------------------------------------------

    def spill(self, facts: WorkflowFacts, reason: str) -> None:
        self.early.system_metrics.stop(facts.langchain_run_id)
        if facts.sampled_out:  # in memory; flush/close writes or spools it
            encoded = self.encode(facts)
            if encoded is not None:
                self.rollup_writer.add(facts, *encoded,
                                       self.keeper.take_journal(facts.langchain_run_id))
            return
        self.keeper.spill(facts, reason)

    def journal(self, facts: WorkflowFacts) -> None:
        """``durability: disk``: on disk (claimed by us) before it is queued for export."""
        self.keeper.journal(facts)

    def drain(self, force: bool, limit: int | None = None) -> int:
        """Replay spooled workflows (this and earlier processes'), idempotently."""
        return self.drainer.drain(force, limit)

    def flush(self, timeout: float) -> bool:
        """Write open rollups, replay what this process spooled; True when all is in MLflow."""
        deadline = time.monotonic() + timeout
        self.rollup_writer.write_due(everything=True)
        traces_out = self._send_traces(timeout=max(0.0, deadline - time.monotonic()))
        # In batches, so a large spool (a long outage) cannot hold flush()/close() past timeout.
        self.drainer.flush(deadline)
        return traces_out and self.counters.get("spooled") <= self.counters.get("replayed")

def _import_mlflow_here(with_traces: bool) -> None:
    """Import MLflow now, on the thread building the handler, not later on our worker.

    MLflow's package imports are circular (``mlflow`` <-> ``mlflow.entities``): when our
    worker imported it lazily while the app ran its own ``import mlflow``, one of the two
    threads got a partially initialized module (``ImportError: cannot import name 'Run'``),
    failing the app's import or our export. Importing once here makes both later imports
    no-ops. It costs one MLflow import (about 1-2.5 s, nothing when the app already
    imported MLflow) when a handler with MLflow enabled is built.
    """
    import configurable_agents.observability.sinks.mlflow.writer

    if with_traces:
        import configurable_agents.observability.sinks.mlflow.traces  # noqa: F401
