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

import contextlib
import logging
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from configurable_agents.config.schema import MLFlowConfig
from configurable_agents.names import Tag
from configurable_agents.observability.capture.records import WorkflowRecord
from configurable_agents.observability.facts.assemble import AssembleOptions, Assembler, RunPlan
from configurable_agents.observability.sinks.base import Sink
from configurable_agents.observability.sinks.mlflow.breaker import Breaker
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
    from configurable_agents.observability.facts.workflow_facts import WorkflowFacts
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
        # Workflows still running, for the early parent run: run id -> (record, options, since).
        self._running: dict[Any, tuple[WorkflowRecord, AssembleOptions, float]] = {}
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

    def on_start(self, workflow: WorkflowRecord, options: AssembleOptions) -> None:
        if self.config.log_system_metrics:
            if not self.config.async_logging:
                self._start_run(workflow, options)  # sync mode accepts I/O on the caller
                return
            self._running[workflow.run_id] = (workflow, options, float("-inf"))
            self.wake()
        elif self.config.async_logging:
            self._running[workflow.run_id] = (workflow, options, time.monotonic())

    def on_finish(self, workflow: WorkflowRecord) -> None:
        self._running.pop(workflow.run_id, None)

    def tick(self) -> None:
        if self._running:
            now = time.monotonic()
            for run_id, (workflow, options, since) in self._running.copy().items():
                if now - since >= EARLY_RUN_AFTER_S and self._running.pop(run_id, None):
                    self._start_run(workflow, options)
        self._write_rollups(everything=False)
        self._send_traces(timeout=None)
        self._maybe_drain()

    def _start_run(self, workflow: WorkflowRecord, options: AssembleOptions) -> None:
        if not self.breaker.up:
            return
        try:
            from configurable_agents.observability.privacy.tenancy import (
                TenantError,
                resolve_experiment_name,
            )

            try:
                experiment = resolve_experiment_name(self.config.experiment_name,
                                                     workflow.metadata)
            except TenantError:
                return  # the finished workflow decides (quarantine or not logged)
            experiment_id = self.writer.experiment_id(experiment)
            options = self.prepare_options(options)
            plan = Assembler.start_plan(workflow, options)
            if options.redact is not None:
                plan.tags = {k: options.redact(v) for k, v in plan.tags.items()}
                plan.run_name = options.redact(plan.run_name)
            workflow.experiment_id = experiment_id
            workflow.mlflow_run_id = self.writer.create_run(experiment_id, plan)
            if self.config.log_system_metrics:
                self._system_metrics.start(workflow, self.writer.tracking_uri)
        except Exception as exc:
            self.diagnostics.internal_error("export:start", exc)

    # ---- export (worker thread) ---------------------------------------------------------------

    def export(self, facts: WorkflowFacts) -> None:
        workflow = facts.record
        self._system_metrics.stop(workflow)
        if facts.sampled_out:
            self.rollups.add(facts)  # written per bucket by tick/flush
            return
        if not self.breaker.up and not (self.breaker.probe_due() and self._probe()):
            self._spool(facts, reason="MLflow unreachable")
            return
        # The trace tags go with the runs (one backend call less); a copy, since every
        # sink reads the same facts.
        plan = replace(facts.plan, tags={**facts.plan.tags, **self._trace_tags(workflow)})
        refused = 0
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S)):
            if delay and not refused:
                time.sleep(delay)
            try:
                experiment_id = workflow.experiment_id or self.writer.experiment_id(
                    facts.experiment
                )
                run_id = self.writer.write_tree(
                    experiment_id, plan, workflow.mlflow_run_id,
                    idempotent=attempt > 0, langchain_run_id=facts.langchain_run_id,
                )
            except Exception as exc:
                if is_rejection(exc):
                    refused += 1  # MLflow refused the data, it is not down: once more, then aside
                    if refused > 1 or attempt == len(RETRY_DELAYS_S):
                        self._set_aside(facts, plan, exc)
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
            self._write_trace(facts, plan, run_id, experiment_id)
            return
        self.breaker.trip()
        self._spool(facts, reason="MLflow write failed")

    def _set_aside(self, facts: WorkflowFacts, plan: RunPlan, exc: BaseException) -> None:
        """A workflow MLflow refused even cleaned: counted, kept in ``rejected/``; no breaker."""
        self.counters.add("rejected")
        reason = f"MLflow refused it: {type(exc).__name__}: {self.diagnostics.scrub(str(exc))}"
        try:
            where = self.spool.put_rejected(facts.experiment, facts.langchain_run_id, plan,
                                            reason[:2000])
        except OSError:
            where = None
        self.diagnostics.warn_once(
            f"rejected:{type(exc).__name__}",
            "MLflow refused a workflow (%s); it is set aside in %s and counted in "
            "stats().rejected; other workflows keep flowing", reason[:300],
            where.parent if where else "nowhere (the spool is not writable)",
        )

    def _trace_tags(self, workflow: WorkflowRecord) -> dict[str, str]:
        if not self.config.log_traces:
            return {}
        from configurable_agents.observability.sinks.mlflow.traces import trace_run_tags

        return trace_run_tags(workflow)

    def _write_trace(self, facts: WorkflowFacts, plan: RunPlan, run_id: str,
                     experiment_id: str) -> None:
        """The trace after its runs; a failure is counted, the runs are already safe."""
        if not self.config.log_traces:
            return
        try:
            from configurable_agents.observability.sinks.mlflow.trace_shipping import ship_trace

            ship_trace(self.writer, facts, plan, experiment_id, run_id, self._trace_batch_failed,
                       batched=self.config.async_logging)
        except Exception as exc:
            self.diagnostics.internal_error("export:trace", exc)
            with contextlib.suppress(Exception):  # never point at a trace that is not there
                self.writer.client.delete_tag(run_id, Tag.TRACE_ID)

    def _send_traces(self, timeout: float | None) -> bool:
        if not self.config.log_traces or self._writer is None:
            return True
        from configurable_agents.observability.sinks.mlflow.trace_shipping import send_traces

        return send_traces(self._writer, self.diagnostics, timeout)

    def _trace_batch_failed(self, group: list[Any], exc: BaseException) -> None:
        """A span batch failed twice: its workflows are spooled and replayed (exactly once)."""
        from configurable_agents.observability.sinks.mlflow.trace_shipping import (
            spool_failed_batch,
        )

        if spooled := spool_failed_batch(self.spool, self.diagnostics, group, exc):
            self._spool_maybe_nonempty = True
            self.counters.add("spooled", spooled)

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
        self._system_metrics.stop(facts.record)
        if facts.sampled_out:
            self.rollups.add(facts)  # in memory; flush/close writes or spools it
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

    def _spool(self, facts: WorkflowFacts, reason: str) -> None:
        plan, trace = self._trace_for_spool(facts)
        try:
            path = self.spool.put(facts.experiment, facts.langchain_run_id,
                                  facts.record.mlflow_run_id, plan, trace)
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

    def _trace_for_spool(self, facts: WorkflowFacts) -> tuple[RunPlan, dict[str, Any] | None]:
        """The plan to spool (with its trace tags only if the trace goes along) and the trace.

        Built now because the spool keeps the assembled plan, not the records a trace is
        made from; without it a workflow that waited out an outage would have no trace.
        """
        tags = self._trace_tags(facts.record)
        if not tags:
            return facts.plan, None
        from configurable_agents.observability.sinks.mlflow.traces import trace_for_spool

        trace = None
        if Tag.TRACE_ID in tags:  # else MLflow's autolog traces these calls: tag only
            try:
                trace = trace_for_spool(facts.record, facts.plan, facts.options)
            except Exception as exc:
                self.diagnostics.internal_error("spool:trace", exc)
                return facts.plan, None
        return replace(facts.plan, tags={**facts.plan.tags, **tags}), trace

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
