"""The pipeline: finished records -> WorkflowFacts (once) -> every enabled sink.

The caller only does a ``put_nowait`` of the finished record. One pipeline
thread prices, redacts and bounds it (:class:`FactsBuilder`) and hands the same
facts to each sink's own worker (:class:`SinkWorker`), so sinks fail, retry,
spool and replay on their own. When the pipeline's queue is full, records go to
an overflow thread that builds their facts and lets each sink *spill* them
(MLflow: to the spool on disk), never dropped and never blocking the caller
(unless ``block_on_full``). In synchronous mode (``async_logging: false``) the
same code runs on the caller. At interpreter exit, every live pipeline gets a
bounded chance to flush; what is still queued then is spilled.
"""

from __future__ import annotations

import atexit
import contextlib
import queue
import threading
import time
import weakref
from dataclasses import dataclass, replace
from typing import Any

from configurable_agents.config.pipeline_config import PipelineConfig
from configurable_agents.observability import forksafe
from configurable_agents.observability.capture.records import WorkflowRecord
from configurable_agents.observability.diagnostics import Diagnostics
from configurable_agents.observability.facts.build import FactOptions, build_start_facts
from configurable_agents.observability.facts.builder import FactsBuilder
from configurable_agents.observability.facts.model import WorkflowStart
from configurable_agents.observability.sampling import Sampler
from configurable_agents.observability.sinks.base import Sink, SinkStats
from configurable_agents.observability.sinks.worker import SinkWorker

_STOP = object()


@dataclass(slots=True)
class _Finished:
    workflow: WorkflowRecord
    options: FactOptions


class Pipeline:
    """Owns the facts thread and one :class:`SinkWorker` per sink."""

    def __init__(
        self,
        settings: PipelineConfig,
        sinks: list[Sink],
        builder: FactsBuilder,
        diagnostics: Diagnostics,
    ) -> None:
        self.settings = settings
        self.builder = builder
        self.diagnostics = diagnostics
        self.sinks = list(sinks)
        self.sampler = Sampler.from_config(settings)
        inline = not settings.async_logging
        self.workers = [
            SinkWorker(s, diagnostics, block_on_full=settings.block_on_full, inline=inline)
            for s in self.sinks
        ]
        for sink in self.sinks:
            sink.bind_diagnostics(diagnostics)
            sink.bind_health(self.sink_stats)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=settings.queue_size)
        self._overflow: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._overflow_thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._cond = threading.Condition()
        self._submitted = 0
        self._completed = 0
        self._dropped = 0  # not logged on purpose: tenant refused (fail closed)
        self._failed = 0  # facts could not be built
        self._closed = False
        if self.sinks:
            _register_atexit(self)
        forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        """Fresh queues, locks and threads in a forked child, so its workflows drain."""
        self._queue = queue.Queue(maxsize=self.settings.queue_size)
        self._overflow = queue.SimpleQueue()
        self._thread = self._overflow_thread = None
        self._thread_lock = threading.Lock()
        self._cond = threading.Condition()
        self._submitted = self._completed = self._dropped = self._failed = 0

    def sink(self, name: str) -> Sink | None:
        return next((s for s in self.sinks if s.name == name), None)

    # ---- caller side --------------------------------------------------------------------------

    def workflow_started(self, workflow: WorkflowRecord, options: FactOptions) -> None:
        if self._closed or not self.workers:
            return
        builder = self.builder

        def describe() -> Any:
            return build_start_facts(workflow, builder.prepare(options))

        start = WorkflowStart(workflow.run_id, workflow.start_ns, workflow.sink_state, describe)
        for worker in self.workers:
            worker.ensure_started()  # idle ticks must run while the workflow does
            try:
                worker.sink.on_start(start)
            except Exception as exc:
                self.diagnostics.internal_error(f"{worker.sink.name}:start", exc)

    def workflow_finished(self, workflow: WorkflowRecord, options: FactOptions) -> None:
        item = _Finished(workflow, options)
        for sink in self.sinks:
            sink.on_finish(workflow.run_id)
        with self._cond:
            self._submitted += 1
        if not self.settings.async_logging or self._closed:
            self._process(item)  # sync mode, or after close(): here rather than lost
            return
        self._ensure_thread("_thread", self._loop, "pipeline")
        if self.settings.block_on_full:
            self._queue.put(item)
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._overflow.put(item)
            self._ensure_thread("_overflow_thread", self._overflow_loop, "overflow")
            self.diagnostics.warn_once(
                "queue_full",
                "export queue full (%d workflows; a backend is slow or down): spilling to each "
                "sink's fallback (MLflow: the spool). Raise observability.pipeline.queue_size "
                "if this is normal load.",
                self.settings.queue_size,
            )

    def _ensure_thread(self, attr: str, target: Any, label: str) -> None:
        if getattr(self, attr) is not None:
            return
        with self._thread_lock:
            if getattr(self, attr) is None:
                thread = threading.Thread(
                    target=target, name=f"configurable-agents-{label}", daemon=True
                )
                thread.start()
                setattr(self, attr, thread)

    # ---- pipeline threads ---------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            self._process(item)

    def _overflow_loop(self) -> None:
        while True:
            item = self._overflow.get()
            if item is _STOP:
                return
            self._process(item, spill_reason="queue full")

    def _process(self, item: _Finished, spill_reason: str | None = None) -> None:
        try:
            facts = self.builder.build(item.workflow, item.options)
            if not self.sampler.keep(facts):
                facts = replace(facts, sampled_out=True)
            for worker in self.workers:
                if spill_reason is None:
                    worker.submit(facts)
                else:
                    worker.spill(facts, spill_reason)
        except Exception as exc:
            self.diagnostics.internal_error("facts", exc)
            with self._cond:
                self._failed += 1
        finally:
            with self._cond:
                self._completed += 1
                self._cond.notify_all()

    # ---- flush / close / stats ----------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """True when every workflow finished so far is written by every sink."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            if not self._cond.wait_for(lambda: self._completed >= target, timeout=timeout):
                return False
        done = True
        for worker in self.workers:
            done = worker.flush(max(0.0, deadline - time.monotonic())) and done
        return done

    def close(self, timeout: float) -> bool:
        """Flush with a bounded wait; whatever is still queued then is spilled, not lost."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            done = self._cond.wait_for(lambda: self._completed >= target, timeout=timeout)
        self._closed = True
        if not done:
            self._spill_queued()
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_STOP)
        if self._overflow_thread is not None:
            self._overflow.put(_STOP)
        for worker in self.workers:
            done = worker.close(max(0.0, deadline - time.monotonic())) and done
        return done

    def _spill_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._process(item, spill_reason="exit before flush finished")

    def sink_stats(self) -> dict[str, SinkStats]:
        return {worker.sink.name: worker.stats() for worker in self.workers}

    @property
    def pending(self) -> int:
        with self._cond:
            own = self._submitted - self._completed
        return own + sum(worker.pending for worker in self.workers)

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {
                "queued": self._submitted,
                "dropped": self._dropped,
                "failed": self._failed,
            }


_live_pipelines: weakref.WeakSet[Pipeline] = weakref.WeakSet()
_atexit_lock = threading.Lock()
_atexit_registered = False


def _register_atexit(pipeline: Pipeline) -> None:
    global _atexit_registered
    _live_pipelines.add(pipeline)
    with _atexit_lock:
        if not _atexit_registered:
            atexit.register(_flush_all_at_exit)
            _atexit_registered = True


def _flush_all_at_exit() -> None:
    """Give queued workflows a bounded chance to land before the interpreter exits."""
    for pipeline in list(_live_pipelines):
        with contextlib.suppress(Exception):
            pipeline.close(pipeline.settings.flush_timeout_s)
