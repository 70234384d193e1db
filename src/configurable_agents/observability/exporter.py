"""The background writer: finished WorkflowRecords -> MLflow, off the caller's hot path.

One daemon thread per handler drains a bounded queue; the caller only does a
``put_nowait``. Pricing, serialization, redaction and every MLflow call happen
here. The promise is that every finished workflow reaches MLflow exactly once:

- a failed write is retried with backoff, then the assembled workflow is spooled
  to disk (:mod:`.spool`) and a circuit breaker stops further attempts until a
  probe finds the backend again; then the spool drains by itself;
- when the queue is full, workflows go to a spooler thread (disk), never dropped
  and never blocking the caller (unless ``block_on_full``);
- writes are idempotent, keyed by the LangChain run id, so replays and retries
  after partial writes never duplicate runs;
- at interpreter exit, what could not be flushed in time is spooled.

In synchronous mode (``async_logging: false``) the same code runs on the caller.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from configurable_agents.config.schema import MLFlowConfig
from configurable_agents.observability.capture.records import WorkflowRecord
from configurable_agents.observability.facts.assemble import AssembleOptions, Assembler, RunPlan
from configurable_agents.observability.privacy.tenancy import TenantError, resolve_experiment_name
from configurable_agents.observability.sinks.spool import Spool, SpoolCorruptError, spool_dir_for

if TYPE_CHECKING:
    from configurable_agents.observability.capture.handler import MLflowCallbackHandler
    from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter

logger = logging.getLogger("configurable_agents.observability")

RETRY_DELAYS_S = (0.5, 2.0)
BREAKER_MAX_BACKOFF_S = 30.0
DRAIN_CHECK_INTERVAL_S = 2.0
LOOP_TICK_S = 0.5
EARLY_RUN_AFTER_S = 2.0
_STOP = object()


@dataclass(slots=True)
class ExporterStats:
    queued: int
    exported: int
    spooled: int
    replayed: int
    failed: int
    dropped: int
    internal_errors: int
    active_runs: int
    pending_workflows: int
    backend_up: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Job:
    kind: str  # "start" | "finish" | "drain"
    workflow: WorkflowRecord | None = None
    options: AssembleOptions | None = None
    experiment: str | None = None


class _Breaker:
    """Backend health: after a failed write, skip MLflow until a probe succeeds."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.failures = 0
        self.next_probe = 0.0

    @property
    def up(self) -> bool:
        return self.down_since is None

    def trip(self) -> None:
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
        self.failures += 1
        self.next_probe = now + min(BREAKER_MAX_BACKOFF_S, 0.5 * 2 ** min(self.failures, 6))

    def probe_due(self) -> bool:
        return time.monotonic() >= self.next_probe

    def reset(self) -> None:
        self.down_since = None
        self.failures = 0


class Exporter:
    """Owns the queue, the threads, the MLflow writer, the spool and the counters of a handler."""

    def __init__(self, config: MLFlowConfig, pricing: Any = None, redactor: Any = None) -> None:
        self.config = config
        self._pricing_arg = pricing
        self._redactor_arg = redactor
        # Room for a system-metrics start job per queued workflow.
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2 * config.queue_size)
        self._overflow: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._spooler: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._cond = threading.Condition()
        self._submitted = 0
        self._completed = 0
        self._exported = 0
        self._spooled = 0
        self._replayed = 0
        self._failed = 0
        self._dropped = 0
        self._internal_errors = 0
        self._logged_kinds: set[str] = set()
        self._writer: MlflowWriter | None = None
        self._assembler: Assembler | None = None
        self._redact: Any = None
        self._ready_lock = threading.Lock()
        self._breaker = _Breaker()
        self.spool = Spool(spool_dir_for(config.tracking_uri, config.spool_dir))
        self._spool_maybe_nonempty = True  # a previous process may have left some
        self._last_drain_check = 0.0
        self._inflight: _Job | None = None
        # Workflows still running (async mode), for the early parent run: run id -> entry.
        self._running: dict[Any, tuple[WorkflowRecord, Any, float]] = {}
        self._run_ids: dict[str, str] = {}
        self._monitors: dict[str, Any] = {}
        self.last_run_id: str | None = None
        self._closed = False
        if config.enabled:
            _register_atexit(self)

    # ---- lazy heavy parts ------------------------------------------------------------------

    def _ensure_ready(self) -> None:
        if self._writer is not None:
            return
        with self._ready_lock:
            if self._writer is not None:
                return
            from configurable_agents.observability.facts.cost_estimator import PriceBook
            from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter

            price_book = (
                self._pricing_arg
                if hasattr(self._pricing_arg, "estimate_cost")
                else PriceBook(self._pricing_arg)
            )
            self._assembler = Assembler(price_book)
            if self._redactor_arg is not None:
                self._redact = getattr(self._redactor_arg, "redact", self._redactor_arg)
            elif self.config.redact_pii:
                from configurable_agents.observability.privacy.redaction import Redactor

                self._redact = Redactor(self.config.redaction).redact
            self._writer = MlflowWriter(self.config.tracking_uri)

    # ---- called from the handler (caller thread) ---------------------------------------------

    def workflow_started(self, workflow: WorkflowRecord, handler: MLflowCallbackHandler) -> None:
        """Let long workflows be visible while they run, without costing short ones anything.

        The exporter creates the parent run (RUNNING, with host/pid heartbeat tags) for a
        workflow still running after ``EARLY_RUN_AFTER_S``; a short one is only a dict
        entry here. System metrics need the run at once, so they start it immediately.
        """
        if not self.config.enabled or self._closed:
            return
        if self.config.log_system_metrics:
            job = _Job("start", workflow, _options(handler))
            if not self.config.async_logging:
                self._safe_start(job)  # sync mode accepts I/O on the caller
                return
            self._ensure_thread()
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(job)
            return
        if self.config.async_logging:
            self._running[workflow.run_id] = (workflow, handler, time.monotonic())
            self._ensure_thread()

    def workflow_finished(self, workflow: WorkflowRecord, handler: MLflowCallbackHandler) -> None:
        self._running.pop(workflow.run_id, None)
        job = _Job("finish", workflow, _options(handler))
        with self._cond:
            self._submitted += 1
        if not self.config.async_logging or self._closed:
            # Sync mode, or after close(): write here rather than lose the workflow.
            self._run_job(job)
            return
        self._ensure_thread()
        if self.config.block_on_full:
            self._queue.put(job)
            return
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._overflow.put(job)
            self._ensure_spooler()
            self._log_once(
                "queue_full",
                "export queue full (%d workflows; backend slow or down): spooling to %s. "
                "Raise observability.mlflow.queue_size if this is normal load.",
                self.config.queue_size,
                self.spool.directory,
            )

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="configurable-agents-mlflow-exporter", daemon=True
                )
                self._thread.start()

    def _ensure_spooler(self) -> None:
        if self._spooler is not None:
            return
        with self._thread_lock:
            if self._spooler is None:
                self._spooler = threading.Thread(
                    target=self._spool_loop, name="configurable-agents-spooler", daemon=True
                )
                self._spooler.start()

    # ---- the exporter thread ---------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            if self._running:
                self._start_overdue()
            try:
                job = self._queue.get(timeout=LOOP_TICK_S)
            except queue.Empty:
                self._maybe_drain()
                continue
            if job is _STOP:
                return
            self._inflight = job
            try:
                self._run_job(job)
            finally:
                self._inflight = None

    def _spool_loop(self) -> None:
        while True:
            job = self._overflow.get()
            if job is _STOP:
                return
            try:
                self._spool_job(job, reason="queue full")
            finally:
                self._complete()

    def _run_job(self, job: _Job) -> None:
        if job.kind == "start":
            self._safe_start(job)
            return
        if job.kind == "drain":
            try:
                self._drain_spool(force=True)
            finally:
                self._complete()
            return
        try:
            self._finish(job)
        except Exception as exc:
            self.record_internal_error("export:finish", exc)
            with self._cond:
                self._failed += 1
        finally:
            self._complete()

    def _complete(self) -> None:
        with self._cond:
            self._completed += 1
            self._cond.notify_all()

    def _experiment_for(self, job: _Job) -> str | None:
        """Resolve a ``{tenant_id}``-style experiment template; None means do not log."""
        assert job.workflow is not None
        if job.experiment is not None:
            return job.experiment
        template = self.config.experiment_name
        try:
            job.experiment = resolve_experiment_name(template, job.workflow.metadata)
        except TenantError as exc:
            if self.config.tenant_fail_closed:
                self._log_once(f"tenant:{exc}", "not logging workflow: %s (fail closed)", exc)
                return None
            self._log_once(f"tenant:{exc}", "%s; logging to quarantine experiment %r",
                           exc, self.config.quarantine_experiment)
            job.experiment = self.config.quarantine_experiment
        return job.experiment

    def _start_overdue(self) -> None:
        """Create the parent run of workflows running longer than EARLY_RUN_AFTER_S."""
        now = time.monotonic()
        for run_id, (workflow, handler, started) in self._running.copy().items():
            if now - started >= EARLY_RUN_AFTER_S and self._running.pop(run_id, None):
                self._safe_start(_Job("start", workflow, _options(handler)))

    def _safe_start(self, job: _Job) -> None:
        if not self._breaker.up:
            return
        try:
            self._ensure_ready()
            assert self._writer is not None and self._assembler is not None
            assert job.workflow is not None and job.options is not None
            experiment = self._experiment_for(job)
            if experiment is None:
                return
            workflow = job.workflow
            experiment_id = self._writer.experiment_id(experiment)
            plan = self._assembler.start_plan(workflow, job.options)
            if self._redact is not None:
                plan.tags = {k: self._redact(v) for k, v in plan.tags.items()}
            workflow.experiment_id = experiment_id
            workflow.mlflow_run_id = self._writer.create_run(experiment_id, plan)
            if self.config.log_system_metrics:
                self._start_system_metrics(workflow)
        except Exception as exc:
            self.record_internal_error("export:start", exc)

    def _assemble(self, job: _Job) -> RunPlan:
        self._ensure_ready()
        assert self._assembler is not None and job.workflow is not None
        assert job.options is not None
        if self._redact is not None:
            job.options.redact = self._redact
        return self._assembler.plan(job.workflow, job.options)

    def _finish(self, job: _Job) -> None:
        workflow = job.workflow
        assert workflow is not None
        self._stop_system_metrics(workflow)
        experiment = self._experiment_for(job)
        if experiment is None:
            with self._cond:
                self._dropped += 1
            return
        plan = self._assemble(job)
        if not self._breaker.up and not (self._breaker.probe_due() and self._probe()):
            self._spool_plan(job, plan, reason="MLflow unreachable")
            return
        # Written with the runs (one backend call less); _spool_plan sets them itself.
        trace_tags = self._trace_tags(workflow)
        plan.tags.update(trace_tags)
        assert self._writer is not None
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S)):
            if delay:
                time.sleep(delay)
            try:
                experiment_id = workflow.experiment_id or self._writer.experiment_id(experiment)
                run_id = self._writer.write_tree(
                    experiment_id, plan, workflow.mlflow_run_id,
                    idempotent=attempt > 0, langchain_run_id=str(workflow.run_id),
                )
            except Exception as exc:
                self._log_once(
                    f"export:{type(exc).__name__}",
                    "MLflow write failed (%s: %s); retrying, then spooling to %s",
                    type(exc).__name__, self._scrub(str(exc)), self.spool.directory,
                )
                if not self._probe():
                    break
                continue
            self._exported_ok(str(workflow.run_id), run_id)
            self._after_write(job, plan, run_id, experiment_id)
            return
        self._breaker.trip()
        self._spool_plan(job, plan, reason="MLflow write failed")

    def _trace_tags(self, workflow: WorkflowRecord) -> dict[str, str]:
        if not self.config.log_traces:
            return {}
        from configurable_agents.observability.sinks.mlflow.traces import trace_run_tags

        return trace_run_tags(workflow)

    def _after_write(self, job: _Job, plan: RunPlan, run_id: str, experiment_id: str) -> None:
        """Hook for writes that follow the runs (traces)."""
        if not self.config.log_traces or job.workflow is None or job.options is None:
            return
        try:  # a trace failure is counted; the run is already safe in MLflow
            from configurable_agents.observability.sinks.mlflow.traces import export_trace

            assert self._writer is not None
            export_trace(self._writer, job.workflow, plan, experiment_id, run_id, job.options)
        except Exception as exc:
            self.record_internal_error("export:trace", exc)
            from configurable_agents.observability.sinks.mlflow.traces import TRACE_ID_TAG

            with contextlib.suppress(Exception):  # never point at a trace that is not there
                assert self._writer is not None
                self._writer.client.delete_tag(run_id, TRACE_ID_TAG)

    def _exported_ok(self, langchain_run_id: str, run_id: str) -> None:
        self._breaker.reset()
        with self._cond:
            self._exported += 1
            self.last_run_id = run_id
            self._run_ids[langchain_run_id] = run_id
            if len(self._run_ids) > 10_000:
                self._run_ids.pop(next(iter(self._run_ids)))

    def _probe(self) -> bool:
        """Is the backend answering? Cheap: /health for servers, one query for databases."""
        try:
            assert self._writer is not None
            ok = self._writer.ping()
        except Exception:
            ok = False
        if ok:
            self._breaker.reset()
        else:
            self._breaker.trip()
        return ok

    # ---- spool ------------------------------------------------------------------------------

    def _spool_job(self, job: _Job, reason: str) -> None:
        try:
            experiment = self._experiment_for(job)
            if experiment is None:
                with self._cond:
                    self._dropped += 1
                return
            self._spool_plan(job, self._assemble(job), reason)
        except Exception as exc:
            self.record_internal_error("spool", exc)
            with self._cond:
                self._failed += 1

    def _spool_plan(self, job: _Job, plan: RunPlan, reason: str) -> None:
        workflow = job.workflow
        assert workflow is not None and job.experiment is not None
        trace = self._trace_for_spool(job, plan)
        try:
            path = self.spool.put(
                job.experiment, str(workflow.run_id), workflow.mlflow_run_id, plan, trace
            )
        except OSError as exc:
            with self._cond:
                self._failed += 1
            self._log_once("spool:write", "could not spool workflow %s to %s: %s; it is lost",
                           workflow.run_id, self.spool.directory, exc)
            return
        self._spool_maybe_nonempty = True
        with self._cond:
            self._spooled += 1
        self._log_once(f"spooled:{reason}", "%s: workflows are spooled to %s and will be "
                       "replayed when it is back (or run `configurable-agents sync`)", reason,
                       path.parent)

    def _trace_for_spool(self, job: _Job, plan: RunPlan) -> dict[str, Any] | None:
        """The trace to replay with the runs (and the run tags that point at it), or None.

        Built now because the spool keeps the assembled plan, not the records a trace is
        made from; without it a workflow that waited out an outage would have no trace.
        """
        assert job.workflow is not None
        tags = self._trace_tags(job.workflow)
        for key in tags:  # set again below only if the trace goes along
            plan.tags.pop(key, None)
        if not tags or job.options is None:
            return None
        from configurable_agents.observability.sinks.mlflow.traces import (
            TRACE_ID_TAG,
            trace_for_spool,
        )

        trace = None
        if TRACE_ID_TAG in tags:  # else MLflow's autolog traces these calls: tag only
            try:
                trace = trace_for_spool(job.workflow, plan, job.options)
            except Exception as exc:
                self.record_internal_error("spool:trace", exc)
                return None
        plan.tags.update(tags)
        return trace

    def _maybe_drain(self) -> None:
        if not self._spool_maybe_nonempty:
            return
        if time.monotonic() - self._last_drain_check < DRAIN_CHECK_INTERVAL_S:
            return
        self._drain_spool(force=False)

    def _drain_spool(self, force: bool) -> int:
        """Replay spooled workflows (this and earlier processes'), idempotently."""
        self._last_drain_check = time.monotonic()
        if not self._breaker.up and not (force or self._breaker.probe_due()):
            return 0
        try:
            self._ensure_ready()
        except Exception as exc:
            self.record_internal_error("export:init", exc)
            return 0
        replayed = replay_spool(self.spool, self._writer, on_error=self._replay_failed)
        if replayed.failed:
            self._breaker.trip()
        else:
            self._breaker.reset()
            self._spool_maybe_nonempty = bool(self.spool.pending())
        with self._cond:
            self._replayed += replayed.written
        return replayed.written

    def _replay_failed(self, exc: BaseException) -> None:
        self._log_once(f"replay:{type(exc).__name__}", "spool replay paused: %s: %s",
                       type(exc).__name__, self._scrub(str(exc)))

    # ---- system metrics ---------------------------------------------------------------------

    def _start_system_metrics(self, workflow: WorkflowRecord) -> None:
        """MLflow's own CPU/memory/disk monitor, attached to the parent run while it runs."""
        try:
            import psutil  # noqa: F401
        except ImportError:
            self._log_once(
                "system_metrics",
                "log_system_metrics: true needs psutil; install it with "
                "pip install 'configurable-agents[system-metrics]'. System metrics are off.",
            )
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(
            workflow.mlflow_run_id,
            sampling_interval=1,
            samples_before_logging=1,
            tracking_uri=self._writer.tracking_uri if self._writer else None,
        )
        monitor.start()
        self._monitors[str(workflow.run_id)] = monitor

    def _stop_system_metrics(self, workflow: WorkflowRecord) -> None:
        monitor = self._monitors.pop(str(workflow.run_id), None)
        if monitor is not None:
            try:
                monitor.finish()
            except Exception as exc:
                self.record_internal_error("system_metrics", exc)

    # ---- flush / close / stats ----------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait for everything queued so far; then replay the spool if the backend is up.

        True only when all of it is in MLflow (nothing left in this process's spool).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            if not self._cond.wait_for(lambda: self._completed >= target, timeout=timeout):
                return False
        if self._spooled > self._replayed and self.config.async_logging and not self._closed:
            with self._cond:
                self._submitted += 1
                target = self._submitted
            self._ensure_thread()
            self._queue.put(_Job("drain"))
            remaining = max(0.0, deadline - time.monotonic())
            with self._cond:
                if not self._cond.wait_for(lambda: self._completed >= target, timeout=remaining):
                    return False
        elif self._spooled > self._replayed and not self.config.async_logging:
            self._drain_spool(force=True)
        return self._spooled <= self._replayed

    def close(self, timeout: float) -> bool:
        """Flush with a bounded wait; whatever is still queued then is spooled, not lost."""
        done = self.flush(timeout)
        self._closed = True
        if not done:
            self._spool_leftovers()
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_STOP)
        if self._spooler is not None:
            self._overflow.put(_STOP)  # type: ignore[arg-type]
        return done

    def _spool_leftovers(self) -> None:
        leftovers: list[_Job] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Job) and item.kind == "finish":
                leftovers.append(item)
        inflight = self._inflight
        if inflight is not None and inflight.kind == "finish":
            leftovers.append(inflight)  # may also land: replay is idempotent
        for job in leftovers:
            self._spool_job(job, reason="exit before flush finished")
            if job is not inflight:
                self._complete()

    def stats(self, active_runs: int = 0) -> ExporterStats:
        with self._cond:
            return ExporterStats(
                queued=self._submitted,
                exported=self._exported,
                spooled=self._spooled,
                replayed=self._replayed,
                failed=self._failed,
                dropped=self._dropped,
                internal_errors=self._internal_errors,
                active_runs=active_runs,
                pending_workflows=self._submitted - self._completed,
                backend_up=self._breaker.up,
            )

    def run_id_for(self, langchain_run_id: str) -> str | None:
        return self._run_ids.get(langchain_run_id)

    def record_internal_error(self, kind: str, exc: BaseException) -> None:
        with self._cond:
            self._internal_errors += 1
        self._log_once(
            kind,
            "configurable-agents %s failed (counted, not raised): %s: %s",
            kind, type(exc).__name__, self._scrub(str(exc)),
        )

    def _scrub(self, text: str) -> str:
        """Never let the tracking URI's credentials reach a log line."""
        uri = self.config.tracking_uri
        if uri in text:
            text = text.replace(uri, self.config.display_tracking_uri)
        return text

    def _log_once(self, kind: str, message: str, *args: Any) -> None:
        if kind in self._logged_kinds:
            return
        self._logged_kinds.add(kind)
        logger.warning(message, *args)


@dataclass(slots=True)
class ReplayResult:
    written: int = 0
    failed: int = 0
    corrupt: int = 0
    traces: int = 0
    trace_errors: int = 0  # runs written, trace not: the run's trace tag is removed


def replay_spool(spool: Spool, writer: Any, on_error: Any = None,
                 limit: int | None = None) -> ReplayResult:
    """Write spooled workflows to MLflow idempotently; stop at the first backend error."""
    result = ReplayResult()
    claims = spool.claim()
    while limit is None or result.written < limit:
        try:
            item = next(claims)
        except StopIteration:
            break
        except SpoolCorruptError as exc:
            result.corrupt += 1
            logger.warning("%s", exc)
            continue
        try:
            experiment_id = writer.experiment_id(item.experiment)
            run_id = writer.write_tree(experiment_id, item.plan, item.mlflow_run_id,
                                       idempotent=True, langchain_run_id=item.langchain_run_id)
        except Exception as exc:
            spool.release(item)
            result.failed += 1
            if on_error is not None:
                on_error(exc)
            break
        if item.trace is not None:
            _replay_trace(writer, item.trace, experiment_id, run_id, result)
        spool.done(item)
        result.written += 1
    claims.close()
    return result


def _replay_trace(writer: Any, trace: dict[str, Any], experiment_id: str, run_id: str,
                  result: ReplayResult) -> None:
    """Write a spooled workflow's trace after its runs; a failure leaves the runs trace-less."""
    from configurable_agents.observability.sinks.mlflow.traces import (
        TRACE_ID_TAG,
        export_spooled_trace,
    )

    try:
        export_spooled_trace(writer, trace, experiment_id, run_id)
        result.traces += 1
    except Exception as exc:
        result.trace_errors += 1
        from configurable_agents.tracking.errors import flat_message, shorten

        logger.warning("the trace of replayed run %s was not written (%s: %s)", run_id,
                       type(exc).__name__, shorten(flat_message(exc, writer.tracking_uri)))
        with contextlib.suppress(Exception):  # never point at a trace that is not there
            writer.client.delete_tag(run_id, TRACE_ID_TAG)


def _options(handler: MLflowCallbackHandler) -> AssembleOptions:
    config = handler.config
    return AssembleOptions(
        workflow_params=handler.params,
        static_tags=handler.static_tags,
        tag_metadata_keys=tuple(config.tag_metadata_keys),
        log_artifacts=config.log_artifacts,
        max_param_chars=config.max_param_chars,
        max_artifact_chars=config.max_artifact_bytes,
        run_name_template=config.run_name,
    )


_live_exporters: weakref.WeakSet[Exporter] = weakref.WeakSet()
_atexit_lock = threading.Lock()
_atexit_registered = False


def _register_atexit(exporter: Exporter) -> None:
    global _atexit_registered
    _live_exporters.add(exporter)
    with _atexit_lock:
        if not _atexit_registered:
            atexit.register(_flush_all_at_exit)
            _atexit_registered = True


def _flush_all_at_exit() -> None:
    """Give queued workflows a bounded chance to land before the interpreter exits."""
    for exporter in list(_live_exporters):
        with contextlib.suppress(Exception):
            exporter.close(exporter.config.flush_timeout_s)
