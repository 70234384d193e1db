"""The background writer: finished WorkflowRecords -> MLflow, off the caller's hot path.

One daemon thread per handler drains a bounded queue. The caller only does a
``put_nowait``; pricing, serialization, redaction and every MLflow call happen
here. Writes are retried with backoff; a workflow that still cannot be written
is counted as failed and logged (never silently dropped). In synchronous mode
(``async_logging: false``) the same code runs on the caller's thread at root end.
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
from configurable_agents.observability.assemble import AssembleOptions, Assembler
from configurable_agents.observability.records import WorkflowRecord

if TYPE_CHECKING:
    from configurable_agents.observability.handler import MLflowCallbackHandler
    from configurable_agents.observability.mlflow_writer import MlflowWriter

logger = logging.getLogger("configurable_agents.observability")

RETRY_DELAYS_S = (0.2, 1.0, 3.0)
_STOP = object()


@dataclass(slots=True)
class ExporterStats:
    queued: int
    exported: int
    failed: int
    dropped: int
    spooled: int
    internal_errors: int
    active_runs: int
    pending_workflows: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class _Job:
    kind: str  # "start" | "finish"
    workflow: WorkflowRecord
    options: AssembleOptions
    experiment: str


class Exporter:
    """Owns the queue, the thread, the MLflow writer and the counters of one handler."""

    def __init__(self, config: MLFlowConfig, pricing: Any = None, redactor: Any = None) -> None:
        self.config = config
        self._pricing_arg = pricing
        self._redactor_arg = redactor
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=config.queue_size)
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._cond = threading.Condition()
        self._submitted = 0
        self._completed = 0
        self._exported = 0
        self._failed = 0
        self._dropped = 0
        self._internal_errors = 0
        self._logged_kinds: set[str] = set()
        self._writer: MlflowWriter | None = None
        self._assembler: Assembler | None = None
        self._redact: Any = None
        self._run_ids: dict[str, str] = {}
        self._monitors: dict[str, Any] = {}
        self.last_run_id: str | None = None
        self._closed = False
        if config.enabled:
            _register_atexit(self)

    # ---- lazy heavy parts (created on the exporter thread, or at first sync export) --------

    def _ensure_ready(self) -> None:
        if self._writer is not None:
            return
        from configurable_agents.observability.cost_estimator import PriceBook
        from configurable_agents.observability.mlflow_writer import MlflowWriter

        price_book = (
            self._pricing_arg
            if hasattr(self._pricing_arg, "estimate_cost")
            else (PriceBook(self._pricing_arg))
        )
        self._assembler = Assembler(price_book)
        if self._redactor_arg is not None:
            self._redact = getattr(self._redactor_arg, "redact", self._redactor_arg)
        elif self.config.redact_pii:
            from configurable_agents.observability.redaction import Redactor

            self._redact = Redactor().redact
        self._writer = MlflowWriter(self.config.tracking_uri)

    # ---- called from the handler (caller thread) ---------------------------------------------

    def workflow_started(self, workflow: WorkflowRecord, handler: MLflowCallbackHandler) -> None:
        """Async mode creates the parent run early so long workflows are visible while running."""
        if not self.config.enabled:
            return
        if not self.config.async_logging:
            if self.config.log_system_metrics:
                # The monitor needs the run now; sync mode accepts I/O on the caller.
                self._safe_start(_Job("start", workflow, _options(handler),
                                      self.config.experiment_name))
            return
        self._enqueue(
            _Job("start", workflow, _options(handler), self.config.experiment_name), count=False
        )

    def workflow_finished(self, workflow: WorkflowRecord, handler: MLflowCallbackHandler) -> None:
        job = _Job("finish", workflow, _options(handler), self.config.experiment_name)
        if not self.config.async_logging:
            with self._cond:
                self._submitted += 1
            self._run_job(job)
            return
        self._enqueue(job, count=True)

    def _enqueue(self, job: _Job, *, count: bool) -> None:
        if self._closed:
            if count:
                # After close(): write synchronously rather than lose the workflow.
                with self._cond:
                    self._submitted += 1
                self._run_job(job)
            return
        self._ensure_thread()
        if count:
            with self._cond:
                self._submitted += 1
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            if not count:
                return  # a missed early start is harmless: finish creates the run
            with self._cond:
                self._dropped += 1
                self._completed += 1
                self._cond.notify_all()
            self._log_once(
                "queue_full",
                "export queue full (%d workflows); workflow %s was not logged. "
                "Raise observability.mlflow.queue_size or check the MLflow backend.",
                self.config.queue_size,
                job.workflow.run_id,
            )

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._thread_lock:
            if self._thread is None:
                thread = threading.Thread(
                    target=self._loop, name="configurable-agents-mlflow-exporter", daemon=True
                )
                thread.start()
                self._thread = thread

    # ---- the exporter thread ---------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            self._run_job(job)

    def _run_job(self, job: _Job) -> None:
        try:
            if job.kind == "start":
                self._safe_start(job)
            else:
                self._finish(job)
        finally:
            if job.kind == "finish":
                with self._cond:
                    self._completed += 1
                    self._cond.notify_all()

    def _safe_start(self, job: _Job) -> None:
        try:
            self._ensure_ready()
            assert self._writer is not None and self._assembler is not None
            workflow = job.workflow
            experiment_id = self._writer.experiment_id(job.experiment)
            plan = self._assembler.start_plan(workflow, job.options)
            if self._redact is not None:
                plan.tags = {k: self._redact(v) for k, v in plan.tags.items()}
            workflow.experiment_id = experiment_id
            workflow.mlflow_run_id = self._writer.create_run(experiment_id, plan)
            if self.config.log_system_metrics:
                self._start_system_metrics(workflow)
        except Exception as exc:
            self.record_internal_error("export:start", exc)

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
            workflow.mlflow_run_id, sampling_interval=1, samples_before_logging=1,
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

    def _finish(self, job: _Job) -> None:
        workflow = job.workflow
        self._stop_system_metrics(workflow)
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S)):
            if delay:
                time.sleep(delay)
            try:
                self._ensure_ready()
                assert self._writer is not None and self._assembler is not None
                options = job.options
                if self._redact is not None:
                    options.redact = self._redact
                plan = self._assembler.plan(workflow, options)
                experiment_id = workflow.experiment_id or self._writer.experiment_id(job.experiment)
                run_id = self._writer.write_tree(experiment_id, plan, workflow.mlflow_run_id)
            except Exception as exc:
                if attempt == len(RETRY_DELAYS_S):
                    with self._cond:
                        self._failed += 1
                    self._log_once(
                        f"export:{type(exc).__name__}",
                        "could not log workflow %s to MLflow at %s after %d attempts: %s: %s",
                        workflow.run_id,
                        self.config.display_tracking_uri,
                        attempt + 1,
                        type(exc).__name__,
                        exc,
                    )
                    return
                continue
            with self._cond:
                self._exported += 1
                self.last_run_id = run_id
                self._run_ids[str(workflow.run_id)] = run_id
                if len(self._run_ids) > 10_000:
                    self._run_ids.pop(next(iter(self._run_ids)))
            return

    # ---- flush / close / stats ----------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._completed >= target, timeout=timeout)

    def close(self, timeout: float) -> bool:
        done = self.flush(timeout)
        self._closed = True
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_STOP)
        return done

    def stats(self, active_runs: int = 0) -> ExporterStats:
        with self._cond:
            return ExporterStats(
                queued=self._submitted,
                exported=self._exported,
                failed=self._failed,
                dropped=self._dropped,
                spooled=0,
                internal_errors=self._internal_errors,
                active_runs=active_runs,
                pending_workflows=self._submitted - self._completed,
            )

    def run_id_for(self, langchain_run_id: str) -> str | None:
        return self._run_ids.get(langchain_run_id)

    def record_internal_error(self, kind: str, exc: BaseException) -> None:
        with self._cond:
            self._internal_errors += 1
        self._log_once(
            kind,
            "configurable-agents %s failed (counted, not raised): %s: %s",
            kind,
            type(exc).__name__,
            exc,
        )

    def _log_once(self, kind: str, message: str, *args: Any) -> None:
        if kind in self._logged_kinds:
            return
        self._logged_kinds.add(kind)
        logger.warning(message, *args)


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
