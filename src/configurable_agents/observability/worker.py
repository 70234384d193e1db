"""BoundedWorker: the one bounded queue + worker thread(s) the pipeline and every sink use.

Like OTel's BatchSpanProcessor, a producer only enqueues; worker threads call
``handle``. The rules live here once, so the pipeline and each sink cannot drift:

* a full queue never blocks the producer (unless ``block_on_full``): the item goes to
  ``on_full`` (default: ``spill(item, "queue full")``);
* ``inline`` (sync mode) and anything submitted after :meth:`close` run ``handle`` on the
  caller rather than being lost;
* :meth:`wait_idle` waits on a condition counting submitted vs completed items;
* :meth:`close` waits a bounded time, then spills what is still queued (and, when
  ``spill_inflight``, what a worker is holding: replays must be idempotent for that);
* an optional ``tick`` runs about twice a second on idle workers, and :meth:`wake` runs
  it at once;
* after ``fork()`` the child gets a fresh queue, locks and counters (:mod:`.forksafe`)
  and starts its threads again on first use.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from configurable_agents.observability import forksafe
from configurable_agents.observability.diagnostics import Diagnostics

T = TypeVar("T")
TICK_S = 0.5
FULL = "queue full"
EXIT = "exit before flush finished"
_STOP = object()
_WAKE = object()


class BoundedWorker(Generic[T]):
    """``submit`` from the producer, ``handle`` on the worker(s); spill instead of block."""

    def __init__(
        self,
        name: str,
        handle: Callable[[T], None],
        spill: Callable[[T, str], None],
        diagnostics: Diagnostics,
        *,
        queue_size: int,
        workers: int = 1,
        block_on_full: bool = False,
        inline: bool = False,
        on_full: Callable[[T], None] | None = None,
        tick: Callable[[], None] | None = None,
        spill_inflight: bool = True,
    ) -> None:
        self.name = name
        self._handle = handle
        self._spill = spill
        self._on_full = on_full
        self._tick_fn = tick
        self._diagnostics = diagnostics
        self._queue_size = queue_size  # 0: unbounded
        self._workers = max(1, workers)
        self._block_on_full = block_on_full
        self.inline = inline
        self._spill_inflight = spill_inflight
        self.closed = False
        self._after_fork_in_child()
        forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        """Fresh queue, locks and threads (also the initial state): the parent's are its own."""
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(0, self._queue_size))
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self._cond = threading.Condition()
        self._submitted = 0
        self._completed = 0
        self._inflight: dict[int, T] = {}

    # ---- producer side ------------------------------------------------------------------------

    def submit(self, item: T) -> bool:
        """Queue (or, inline / after close, handle) ``item``; False when it went to overflow."""
        with self._cond:
            self._submitted += 1
        if self.closed or self.inline:
            self._run(item)  # sync mode, or after close: here rather than lost
            return True
        self.ensure_started()
        if self._block_on_full:
            self._queue.put(item)
            return True
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            try:
                if self._on_full is not None:
                    self._on_full(item)
                else:
                    self.spill(item, FULL)
            finally:
                self._complete()
            return False

    def spill(self, item: T, reason: str) -> None:
        """Hand an item straight to the fallback; an error there is diagnosed, not raised."""
        try:
            self._spill(item, reason)
        except Exception as exc:
            self._diagnostics.internal_error(f"{self.name}:spill", exc)

    def wake(self) -> None:
        """Let an idle worker run ``tick`` now (e.g. a run to start at once)."""
        if self._tick_fn is None:
            return
        if self.inline:
            self._tick()
            return
        self.ensure_started()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_WAKE)

    def ensure_started(self) -> None:
        """Start the worker thread(s) if not yet running (cheap when they are)."""
        if self._threads or self.inline or self.closed:
            return
        with self._threads_lock:
            if self._threads:
                return
            for i in range(self._workers):
                single = self._workers == 1 and self._tick_fn is None
                label = self.name if single else f"{self.name}-{i}"
                thread = threading.Thread(
                    target=self._loop, name=f"configurable-agents-{label}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    # ---- worker side --------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            if self._tick_fn is not None:
                self._tick()
                try:
                    item = self._queue.get(timeout=TICK_S)
                except queue.Empty:
                    continue
            else:
                item = self._queue.get()
            if item is _STOP:
                return
            if item is _WAKE:
                continue
            ident = threading.get_ident()
            self._inflight[ident] = item  # type: ignore[assignment]
            try:
                self._run(item)  # type: ignore[arg-type]
            finally:
                self._inflight.pop(ident, None)

    def _tick(self) -> None:
        if self._tick_fn is None:
            return
        try:
            self._tick_fn()
        except Exception as exc:
            self._diagnostics.internal_error(f"{self.name}:tick", exc)

    def _run(self, item: T) -> None:
        try:
            self._handle(item)
        except Exception as exc:  # handlers catch their own; this is the last resort
            self._diagnostics.internal_error(f"{self.name}:handle", exc)
        finally:
            self._complete()

    def _complete(self) -> None:
        with self._cond:
            self._completed += 1
            self._cond.notify_all()

    # ---- flush / close ------------------------------------------------------------------------

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything submitted so far was handled (or spilled)."""
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._completed >= target, timeout=timeout)

    def close(self, timeout: float) -> bool:
        """Wait up to ``timeout``; what is still queued then is spilled, not lost."""
        done = self.wait_idle(timeout)
        self.closed = True
        if not done:
            self._spill_leftovers()
        for _ in self._threads:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_STOP)
        return done

    def _spill_leftovers(self) -> None:
        leftovers: list[T] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP and item is not _WAKE:
                leftovers.append(item)  # type: ignore[arg-type]
        inflight = list(self._inflight.values()) if self._spill_inflight else []
        for item in [*leftovers, *inflight]:
            self.spill(item, EXIT)
        for _ in leftovers:
            self._complete()

    @property
    def submitted(self) -> int:
        with self._cond:
            return self._submitted

    @property
    def waiting(self) -> int:
        """Items queued that no thread has taken yet (approximate, like ``Queue.qsize``)."""
        return self._queue.qsize()

    @property
    def pending(self) -> int:
        with self._cond:
            return self._submitted - self._completed
