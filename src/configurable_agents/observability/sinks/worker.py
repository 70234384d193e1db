"""SinkWorker: one sink's bounded queue and worker thread(s), like OTel's BatchSpanProcessor.

The pipeline hands every sink the same WorkflowFacts through that sink's own
worker, so a slow or dead destination fills only its own queue. A full queue
never blocks the pipeline (unless ``block_on_full``): the sink's
:meth:`~.base.Sink.spill` policy decides (the MLflow sink spools to disk).
Idle workers call :meth:`~.base.Sink.tick` about twice a second for periodic
work (early runs of long workflows, spool replay).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from configurable_agents.observability import forksafe
from configurable_agents.observability.diagnostics import Diagnostics
from configurable_agents.observability.sinks.base import Sink, SinkStats

if TYPE_CHECKING:
    from configurable_agents.observability.facts.model import WorkflowFacts

TICK_S = 0.5
_STOP = object()
_WAKE = object()


class SinkWorker:
    """Runs one sink: ``submit`` from the pipeline thread, ``export`` on the worker(s)."""

    def __init__(
        self,
        sink: Sink,
        diagnostics: Diagnostics,
        *,
        block_on_full: bool = False,
        inline: bool = False,
    ) -> None:
        self.sink = sink
        self._diagnostics = diagnostics
        self._block_on_full = block_on_full
        self._inline = inline  # sync mode: export on the caller
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, sink.queue_size))
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self._cond = threading.Condition()
        self._submitted = 0
        self._completed = 0
        self._inflight: dict[int, WorkflowFacts] = {}
        self._closed = False
        sink.bind_wake(self.wake)
        forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        """Fresh queue, locks and threads in a forked child (the parent's queue is its own)."""
        self._queue = queue.Queue(maxsize=max(1, self.sink.queue_size))
        self._threads = []
        self._threads_lock = threading.Lock()
        self._cond = threading.Condition()
        self._submitted = self._completed = 0
        self._inflight = {}

    # ---- pipeline side ------------------------------------------------------------------------

    def submit(self, facts: WorkflowFacts) -> None:
        with self._cond:
            self._submitted += 1
        if self._closed or self._inline:
            self._run(facts)  # sync mode, or after close: write here rather than lose it
            return
        self._ensure_threads()
        if self._block_on_full:
            self._queue.put(facts)
            return
        try:
            self._queue.put_nowait(facts)
        except queue.Full:
            self.spill(facts, "queue full")
            self._complete()

    def spill(self, facts: WorkflowFacts, reason: str) -> None:
        """Hand a workflow straight to the sink's fallback (its queue is full or closing)."""
        try:
            self.sink.spill(facts, reason)
        except Exception as exc:
            self._diagnostics.internal_error(f"{self.sink.name}:spill", exc)

    def wake(self) -> None:
        """Let an idle worker run :meth:`Sink.tick` now (e.g. a run to start at once)."""
        if self._inline:
            self._tick()
            return
        self._ensure_threads()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_WAKE)

    def ensure_started(self) -> None:
        """Start the worker thread(s) if not yet running (cheap when they are)."""
        if not self._threads and not self._inline and not self._closed:
            self._ensure_threads()

    def _ensure_threads(self) -> None:
        if self._threads:
            return
        with self._threads_lock:
            if self._threads:
                return
            for i in range(max(1, self.sink.workers)):
                thread = threading.Thread(
                    target=self._loop, name=f"configurable-agents-{self.sink.name}-{i}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    # ---- worker side --------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._tick()
            try:
                item = self._queue.get(timeout=TICK_S)
            except queue.Empty:
                continue
            if item is _STOP:
                return
            if item is _WAKE:
                continue
            ident = threading.get_ident()
            self._inflight[ident] = item
            try:
                self._run(item)
            finally:
                self._inflight.pop(ident, None)

    def _tick(self) -> None:
        try:
            self.sink.tick()
        except Exception as exc:
            self._diagnostics.internal_error(f"{self.sink.name}:tick", exc)

    def _run(self, facts: WorkflowFacts) -> None:
        try:
            self.sink.export(facts)
        except Exception as exc:
            # Whatever went wrong, the workflow goes to the sink's fallback (MLflow: the
            # spool, so flush() reports it as not yet written), never silently lost.
            self._diagnostics.internal_error(f"{self.sink.name}:export", exc)
            if type(self.sink).spill is Sink.spill:
                self.sink.counters.add("failed")  # no fallback to keep it in
                return
            try:
                self.sink.spill(facts, f"export raised {type(exc).__name__}")
            except Exception as spill_exc:
                self.sink.counters.add("failed")
                self._diagnostics.internal_error(f"{self.sink.name}:spill", spill_exc)
        finally:
            self._complete()

    def _complete(self) -> None:
        with self._cond:
            self._completed += 1
            self._cond.notify_all()

    # ---- flush / close / stats ----------------------------------------------------------------

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything submitted so far was exported (or spilled)."""
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._completed >= target, timeout=timeout)

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self.wait_idle(timeout):
            return False
        return self.sink.flush(max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float) -> bool:
        """Flush with a bounded wait; what is still queued then is spilled, not lost."""
        deadline = time.monotonic() + timeout
        done = self.wait_idle(timeout)
        self._closed = True
        if not done:
            self._spill_leftovers()
        for _ in self._threads:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_STOP)
        try:
            closed = self.sink.close(max(0.0, deadline - time.monotonic()))
        except Exception as exc:
            self._diagnostics.internal_error(f"{self.sink.name}:close", exc)
            closed = False
        return done and closed

    def _spill_leftovers(self) -> None:
        leftovers: list[WorkflowFacts] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP and item is not _WAKE:
                leftovers.append(item)
        inflight = list(self._inflight.values())
        # In-flight ones may also land: MLflow's replay is idempotent.
        for facts in [*leftovers, *inflight]:
            self.spill(facts, "exit before flush finished")
        for _ in leftovers:
            self._complete()

    @property
    def pending(self) -> int:
        with self._cond:
            return self._submitted - self._completed

    def stats(self) -> SinkStats:
        return self.sink.counters.snapshot(queue_depth=self.pending, up=self.sink.up)
