"""The MLflow sink: runs (parent + nested) and the linked trace, with retry, breaker and spool.

The promise is that every finished workflow reaches MLflow exactly once:

- a failed write is retried with backoff, then the workflow's runs (and its
  finished trace) are spooled to disk (:mod:`..spool`) and a circuit breaker
  (:mod:`.breaker`) stops further attempts until a probe finds the backend;
  then the spool drains by itself on this sink's idle ticks (:mod:`.replay`);
- writes are idempotent, keyed by the LangChain run id, so replays and retries
  after partial writes never duplicate runs;
- the trace follows its runs on the same worker because it links to the parent
  run's id; a trace failure is counted and never loses the runs.

With ``export_workers`` > 1 several worker threads export at once, each workflow
whole on one thread (its runs, then its trace); the spool drains in batches on any
idle worker so a backlog catches up while new traffic flows (spool claims are
atomic renames). Sampled-out workflows (``facts.sampled_out``) are folded into
rollup runs (:mod:`.rollups`) instead of being written one by one.

A long workflow gets its parent run early (RUNNING, with host/pid heartbeat tags)
once it has run for ``EARLY_RUN_AFTER_S``, so it is visible while it runs; a short
one costs only a dict entry. System metrics need the run at once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from configurable_agents.config.schema import MLFlowConfig
from configurable_agents.names import Tag
from configurable_agents.observability.sinks.base import Sink
from configurable_agents.observability.sinks.mlflow.breaker import Breaker
from configurable_agents.observability.sinks.mlflow.experiments import experiment_for
from configurable_agents.observability.sinks.mlflow.plan import (
    PlanOptions,
    RunPlan,
    plan_for,
    start_plan,
)
from configurable_agents.observability.sinks.mlflow.rejection import is_rejection
from configurable_agents.observability.sinks.mlflow.replay import ReplayResult, replay_spool
from configurable_agents.observability.sinks.mlflow.rollups import (
    Rollup,
    RollupAccumulator,
    write_rollup,
)
from configurable_agents.observability.sinks.mlflow.system_metrics import SystemMetrics
from configurable_agents.observability.sinks.spool import (
    WARN_FILL_RATIO,
    Spool,
    SpoolFullError,
    spool_dir_for,
)

if TYPE_CHECKING:
    from uuid import UUID

    from configurable_agents.observability.facts.model import WorkflowFacts, WorkflowStart
    from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter

logger = logging.getLogger("configurable_agents.observability")

RETRY_DELAYS_S = (0.5, 2.0)
DRAIN_CHECK_INTERVAL_S = 2.0
EARLY_RUN_AFTER_S = 2.0
MAX_REMEMBERED_RUN_IDS = 10_000
DRAIN_BATCH = 20  # spooled workflows one worker replays before it looks at new traffic


class MlflowSink(Sink):
    """Writes each workflow's runs and trace to one tracking URI."""

    name = "mlflow"

    def __init__(self, config: MLFlowConfig) -> None:
        super().__init__()
        self.config = config
        self.queue_size = config.queue_size
        self.workers = config.resolved_export_workers
        self.rollups = RollupAccumulator(config.rollup_bucket_s)
        self._state_lock = threading.Lock()
        # Idle workers replay spool batches side by side, leaving one for new traffic.
        self._drain_slot_count = max(1, self.workers - 1)
        self._drain_slots = threading.BoundedSemaphore(self._drain_slot_count)
        self.breaker = Breaker()
        self.spool = Spool(spool_dir_for(config.tracking_uri, config.spool_dir),
                           max_bytes=config.spool_max_bytes)
        self._spool_failing = False  # a disk-full episode is logged once, until a write works
        self._writer: MlflowWriter | None = None
        self._ready_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._spool_maybe_nonempty = True  # a previous process may have left some
        self._last_drain_check = 0.0
        self.plan_options = PlanOptions.from_config(config)
        # Workflows still running, for the early parent run: run id -> (start notice, since).
        self._running: dict[Any, tuple[WorkflowStart, float]] = {}
        # Early parent runs already created: LangChain run id -> (experiment id, run id).
        self._early: dict[Any, tuple[str, str]] = {}
        self._run_ids: dict[str, str] = {}
        self.last_run_id: str | None = None
        self._system_metrics = SystemMetrics(self.diagnostics)
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

                    self._writer = MlflowWriter(self.config.tracking_uri)
        return self._writer

    def run_id_for(self, langchain_run_id: str) -> str | None:
        return self._run_ids.get(langchain_run_id)

    # ---- workflow start (caller thread: O(1)) --------------------------------------------------

    def on_start(self, start: WorkflowStart) -> None:
        if self.config.log_system_metrics:
            if not self.config.async_logging:
                self._start_run(start)  # sync mode accepts I/O on the caller
                return
            self._running[start.run_id] = (start, float("-inf"))
            self.wake()
        elif self.config.async_logging:
            self._running[start.run_id] = (start, time.monotonic())

    def on_finish(self, run_id: UUID) -> None:
        self._running.pop(run_id, None)

    def tick(self) -> None:
        if self._running:
            now = time.monotonic()
            for run_id, (start, since) in self._running.copy().items():
                if now - since >= EARLY_RUN_AFTER_S and self._running.pop(run_id, None):
                    self._start_run(start)
        self._write_rollups(everything=False)
        self._send_traces(timeout=None)
        self._maybe_drain()

    def _start_run(self, start: WorkflowStart) -> None:
        if not self.breaker.up:
            return
        try:
            facts = start.describe()
            experiment = experiment_for(self.config, facts, None)
            if experiment is None:
                return  # the finished workflow decides (quarantine or not logged)
            experiment_id = self.writer.experiment_id(experiment)
            run_id = self.writer.create_run(experiment_id, start_plan(facts))
            self._early[start.run_id] = (experiment_id, run_id)
            if self.config.log_system_metrics:
                self._system_metrics.start(str(start.run_id), run_id, self.writer.tracking_uri)
        except Exception as exc:
            self.diagnostics.internal_error("export:start", exc)

    def _encode(self, facts: WorkflowFacts) -> tuple[str, RunPlan] | None:
        """The experiment and run plan of ``facts``; None when its tenant is refused."""
        experiment = experiment_for(self.config, facts, self.diagnostics)
        if experiment is None:
            self.counters.add("dropped")
            return None
        return experiment, plan_for(facts, self.plan_options)

    # ---- export (worker thread) ---------------------------------------------------------------

    def export(self, facts: WorkflowFacts) -> None:
        self._system_metrics.stop(facts.langchain_run_id)
        encoded = self._encode(facts)
        if encoded is None:
            return
        experiment, plan = encoded
        if facts.sampled_out:
            self.rollups.add(facts, experiment, plan)  # written per bucket by tick/flush
            return
        if not self.breaker.up and not (self.breaker.probe_due() and self._probe()):
            self._spool(facts, reason="MLflow unreachable", encoded=encoded)
            return
        early_experiment_id, early_run_id = self._early.pop(facts.run_id, (None, None))
        # The trace tags go with the runs (one backend call less).
        plan.tags.update(self._trace_tags(facts))
        refused = 0
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S)):
            if delay and not refused:
                time.sleep(delay)
            try:
                experiment_id = early_experiment_id or self.writer.experiment_id(experiment)
                run_id = self.writer.write_tree(
                    experiment_id, plan, early_run_id,
                    idempotent=attempt > 0, langchain_run_id=facts.langchain_run_id,
                )
            except Exception as exc:
                if is_rejection(exc):
                    refused += 1  # MLflow refused the data, it is not down: once more, then aside
                    if refused > 1 or attempt == len(RETRY_DELAYS_S):
                        self._set_aside(experiment, facts, plan, exc)
                        return
                    continue
                self.diagnostics.warn_once(
                    f"export:{type(exc).__name__}",
                    "MLflow write failed (%s: %s); retrying, then spooling to %s",
                    type(exc).__name__, self.diagnostics.scrub(str(exc)), self.spool.directory,
                )
                if not self._probe():
                    break
                continue
            self._exported_ok(facts.langchain_run_id, run_id)
            self._write_trace(facts, plan, run_id, (experiment, experiment_id))
            return
        self.breaker.trip()
        if early_run_id is not None:  # the replay completes the early run
            self._early[facts.run_id] = (early_experiment_id, early_run_id)
        self._spool(facts, reason="MLflow write failed", encoded=encoded)

    def _set_aside(self, experiment: str, facts: WorkflowFacts, plan: RunPlan,
                   exc: BaseException) -> None:
        """A workflow MLflow refused even cleaned: counted, kept in ``rejected/``; no breaker."""
        self.counters.add("rejected")
        reason = f"MLflow refused it: {type(exc).__name__}: {self.diagnostics.scrub(str(exc))}"
        try:
            where = self.spool.put_rejected(experiment, facts.langchain_run_id, plan,
                                            reason[:2000])
        except OSError:
            where = None
        self.diagnostics.warn_once(
            f"rejected:{type(exc).__name__}",
            "MLflow refused a workflow (%s); it is set aside in %s and counted in "
            "stats().rejected; other workflows keep flowing", reason[:300],
            where.parent if where else "nowhere (the spool is not writable)",
        )

    def _trace_tags(self, facts: WorkflowFacts) -> dict[str, str]:
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

    def spooled_for_replay(self, count: int) -> None:  # a failed span batch (trace_shipping)
        self._spool_maybe_nonempty = True
        self.counters.add("spooled", count)

    def _exported_ok(self, langchain_run_id: str, run_id: str) -> None:
        self.breaker.reset()
        self.counters.add("exported")
        self.last_run_id = run_id
        with self._state_lock:
            self._run_ids[langchain_run_id] = run_id
            if len(self._run_ids) > MAX_REMEMBERED_RUN_IDS:
                self._run_ids.pop(next(iter(self._run_ids)), None)

    def _probe(self) -> bool:
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

    # ---- spool --------------------------------------------------------------------------------

    def spill(self, facts: WorkflowFacts, reason: str) -> None:
        self._system_metrics.stop(facts.langchain_run_id)
        if facts.sampled_out:
            encoded = self._encode(facts)
            if encoded is not None:  # in memory; flush/close writes or spools it
                self.rollups.add(facts, *encoded)
            return
        self._spool(facts, reason)

    # ---- rollups ------------------------------------------------------------------------------

    def _write_rollups(self, everything: bool) -> None:
        """Write closed buckets (all with ``everything``); a failed one is spooled, not lost."""
        for rollup in self.rollups.due(everything=everything):
            self._write_rollup(rollup)

    def _write_rollup(self, rollup: Rollup) -> None:
        if self.breaker.up or (self.breaker.probe_due() and self._probe()):
            for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S)):
                if delay:
                    time.sleep(delay)
                try:
                    experiment_id = self.writer.experiment_id(rollup.experiment)
                    write_rollup(self.writer, experiment_id, rollup.plan, retry=attempt > 0)
                    return
                except Exception as exc:
                    self.diagnostics.warn_once(
                        f"rollup:{type(exc).__name__}", "MLflow rollup write failed (%s: %s)",
                        type(exc).__name__, self.diagnostics.scrub(str(exc)),
                    )
                    if not self._probe():
                        break
            self.breaker.trip()
        try:  # replayed like a workflow; the read side counts each rollup id once
            self.spool.put(rollup.experiment, rollup.rollup_id, None, rollup.plan, None)
            self._spool_maybe_nonempty = True
            self.counters.add("spooled")  # balanced by "replayed" when the drain writes it
        except OSError as exc:
            self.diagnostics.warn_once("spool:rollup", "could not spool a rollup run: %s", exc)

    def _spool(self, facts: WorkflowFacts, reason: str,
               encoded: tuple[str, RunPlan] | None = None) -> None:
        encoded = encoded or self._encode(facts)
        if encoded is None:
            return
        experiment, plan = encoded
        trace = self._trace_for_spool(facts, plan)
        _, early_run_id = self._early.pop(facts.run_id, (None, None))
        try:
            path = self.spool.put(experiment, facts.langchain_run_id, early_run_id, plan, trace)
        except SpoolFullError as exc:
            self.counters.add("dropped")
            self.diagnostics.warn_once(
                "spool:full", "%s: new workflows are dropped (counted in stats().dropped) "
                "until `configurable-agents sync` or a drain makes room; raise "
                "spool_max_bytes to keep more", exc,
            )
            return
        except OSError as exc:
            self.counters.add("failed")
            if not self._spool_failing:  # once per episode (e.g. until the disk has room)
                self._spool_failing = True
                logger.warning("could not spool a workflow to %s (%s); it is lost, and so "
                               "are the next ones until the spool is writable again",
                               self.spool.directory, exc.strerror or type(exc).__name__)
            return
        self._spool_failing = False
        if self.spool.fill_ratio() >= WARN_FILL_RATIO:
            self.diagnostics.warn_once(
                "spool:filling", "the spool %s is %d%% full (spool_max_bytes=%d); past it new "
                "workflows are dropped", self.spool.directory,
                int(self.spool.fill_ratio() * 100), self.spool.max_bytes,
            )
        self._spool_maybe_nonempty = True
        self.counters.add("spooled")
        self.diagnostics.warn_once(
            f"spooled:{reason}", "%s: workflows are spooled to %s and will be replayed when it "
            "is back (or run `configurable-agents sync`)", reason, path.parent,
        )

    def _trace_for_spool(self, facts: WorkflowFacts, plan: RunPlan) -> dict[str, Any] | None:
        """The trace to spool beside the plan (whose tags get the trace tags if it goes along).

        Built now because the spool keeps the plan, not the facts a trace is made from;
        without it a workflow that waited out an outage would have no trace.
        """
        tags = self._trace_tags(facts)
        if not tags:
            return None
        from configurable_agents.observability.sinks.mlflow.traces import trace_for_spool

        trace = None
        if Tag.TRACE_ID in tags:  # else MLflow's autolog traces these calls: tag only
            try:
                trace = trace_for_spool(facts, plan, self.plan_options)
            except Exception as exc:
                self.diagnostics.internal_error("spool:trace", exc)
                return None
        plan.tags.update(tags)
        return trace

    def _maybe_drain(self) -> None:
        if not self._spool_maybe_nonempty:
            return
        if not self.breaker.up:
            if time.monotonic() - self._last_drain_check < DRAIN_CHECK_INTERVAL_S:
                return
            self.drain(force=False)  # one thread probes and replays while it is down
            return
        if not self._drain_slots.acquire(blocking=False):
            return
        try:  # up: a batch on this worker, beside the others' batches and new traffic
            self._last_drain_check = time.monotonic()
            replayed = replay_spool(self.spool, self.writer, on_error=self._replay_failed,
                                    limit=DRAIN_BATCH)
            if not self._account(replayed):
                return
            if replayed.failed:
                self.breaker.trip()
            elif replayed.written < DRAIN_BATCH:
                self._spool_maybe_nonempty = bool(self.spool.pending())
        except Exception as exc:
            self.diagnostics.internal_error("export:drain", exc)
        finally:
            self._drain_slots.release()

    def drain(self, force: bool, limit: int | None = None) -> int:
        """Replay spooled workflows (this and earlier processes'), idempotently."""
        with self._drain_lock:
            self._last_drain_check = time.monotonic()
            if not self.breaker.up and not (force or self.breaker.probe_due()):
                return 0
            try:
                writer = self.writer
            except Exception as exc:
                self.diagnostics.internal_error("export:init", exc)
                return 0
            try:
                replayed = replay_spool(self.spool, writer, on_error=self._replay_failed,
                                        limit=limit)
            except Exception as exc:  # never let one drain stop the exporter for good
                self.diagnostics.internal_error("export:drain", exc)
                return 0
            if not self._account(replayed):
                return 0
            if replayed.failed:
                self.breaker.trip()
            else:
                self.breaker.reset()
                if limit is None or replayed.written < limit:
                    self._spool_maybe_nonempty = bool(self.spool.pending())
            return replayed.written

    def _account(self, replayed: ReplayResult) -> bool:
        """Count one replay pass (written, set aside); False when the spool is unsafe to read."""
        self.counters.add("replayed", replayed.written)
        self.counters.add("rejected", replayed.rejected + replayed.corrupt)
        if replayed.unsafe:
            self.diagnostics.warn_once("replay:unsafe", "%s", replayed.unsafe)
            self._spool_maybe_nonempty = False
            return False
        return True

    def _wait_for_drains(self, deadline: float) -> bool:
        """Wait until no worker is replaying a batch (they count theirs when it ends)."""
        taken = 0
        try:
            for _ in range(self._drain_slot_count):
                if not self._drain_slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    return False
                taken += 1
            return True
        finally:
            for _ in range(taken):
                self._drain_slots.release()

    def _replay_failed(self, exc: BaseException) -> None:
        self.diagnostics.warn_once(
            f"replay:{type(exc).__name__}", "spool replay paused: %s: %s",
            type(exc).__name__, self.diagnostics.scrub(str(exc)),
        )

    # ---- flush --------------------------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Write open rollups, replay what this process spooled; True when all is in MLflow."""
        deadline = time.monotonic() + timeout
        self._write_rollups(everything=True)
        traces_out = self._send_traces(timeout=max(0.0, deadline - time.monotonic()))
        # In batches, so a large spool (a long outage) cannot hold flush()/close() past timeout.
        while self.counters.get("spooled") > self.counters.get("replayed"):
            written = self.drain(force=True, limit=DRAIN_BATCH)
            if time.monotonic() >= deadline or not self.breaker.up:
                break
            if written < DRAIN_BATCH and not (  # other workers' batches may be in flight
                self._wait_for_drains(deadline) and self.spool.pending()
            ):
                break
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
