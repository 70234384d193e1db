"""Replaying the spool from a live MLflow sink: idle-worker batches, forced drains, flush.

While the backend is up, idle workers replay batches side by side (leaving one for
new traffic, and only while no new workflow waits in the queue), so a backlog catches
up on the capacity new traffic leaves; while it is down one thread probes at the
breaker's pace. Every replayed workflow is claimed first
(one owner across processes, :mod:`..spool_claims`) and written idempotently.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from configurable_agents.observability.sinks.mlflow.replay import ReplayResult, replay_spool

if TYPE_CHECKING:
    from configurable_agents.observability.sinks.mlflow.host import SinkHost
    from configurable_agents.observability.sinks.mlflow.spooling import SpoolKeeper

DRAIN_CHECK_INTERVAL_S = 1.0
DRAIN_BATCH = 20  # spooled workflows one worker replays before it looks at new traffic


class Drainer:
    """Drains one MLflow sink's spool (this and earlier processes' workflows)."""

    def __init__(self, sink: SinkHost, keeper: SpoolKeeper) -> None:
        self._sink = sink
        self._keeper = keeper
        self._slot_count = max(1, sink.workers - 1)
        self._slots = threading.BoundedSemaphore(self._slot_count)
        self._lock = threading.Lock()
        self._last_check = 0.0

    def maybe_drain(self) -> None:
        sink, keeper = self._sink, self._keeper
        if not keeper.maybe_nonempty:
            return
        if not sink.breaker.up:
            if time.monotonic() - self._last_check < DRAIN_CHECK_INTERVAL_S:
                return
            # One thread probes; a batch once it answers (then the slots below take over).
            self.drain(force=False, limit=DRAIN_BATCH)
            return
        if sink.backlog() > 0:
            return  # new traffic first: the spool drains on capacity new workflows leave
        if not self._slots.acquire(blocking=False):
            return
        try:  # up: a batch on this worker, beside the others' batches and new traffic
            self._last_check = time.monotonic()
            replayed = replay_spool(keeper.spool, sink.writer, on_error=self._failed,
                                    limit=DRAIN_BATCH)
            if not self._account(replayed):
                return
            if replayed.failed:
                sink.breaker.trip()
            elif replayed.written < DRAIN_BATCH:
                keeper.maybe_nonempty = bool(keeper.spool.pending())
        except Exception as exc:
            sink.diagnostics.internal_error("export:drain", exc)
        finally:
            self._slots.release()

    def drain(self, force: bool, limit: int | None = None) -> int:
        """Replay spooled workflows (this and earlier processes'), idempotently."""
        sink, keeper = self._sink, self._keeper
        with self._lock:
            self._last_check = time.monotonic()
            if not sink.breaker.up and not (force or sink.breaker.probe_due()):
                return 0
            if not sink.breaker.up and not force and not sink.probe():
                return 0  # the cheap probe first: no spool file is claimed for nothing
            try:
                writer = sink.writer
            except Exception as exc:
                sink.diagnostics.internal_error("export:init", exc)
                return 0
            try:
                replayed = replay_spool(keeper.spool, writer, on_error=self._failed,
                                        limit=limit)
            except Exception as exc:  # never let one drain stop the exporter for good
                sink.diagnostics.internal_error("export:drain", exc)
                return 0
            if not self._account(replayed):
                return 0
            if replayed.failed:
                sink.breaker.trip()
            else:
                sink.breaker.reset()
                if limit is None or replayed.written < limit:
                    keeper.maybe_nonempty = bool(keeper.spool.pending())
            return replayed.written

    def _account(self, replayed: ReplayResult) -> bool:
        """Count one replay pass (written, set aside); False when the spool is unsafe to read."""
        sink = self._sink
        sink.counters.add("replayed", replayed.written)
        sink.counters.add("rejected", replayed.rejected + replayed.corrupt)
        if replayed.unsafe:
            sink.diagnostics.warn_once("replay:unsafe", "%s", replayed.unsafe)
            self._keeper.maybe_nonempty = False
            return False
        return True

    def wait_for_batches(self, deadline: float) -> bool:
        """Wait until no worker is replaying a batch (they count theirs when it ends)."""
        taken = 0
        try:
            for _ in range(self._slot_count):
                if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    return False
                taken += 1
            return True
        finally:
            for _ in range(taken):
                self._slots.release()

    def flush(self, deadline: float) -> None:
        """Replay what this process spooled, in batches, until done or the deadline."""
        sink = self._sink
        while sink.counters.get("spooled") > sink.counters.get("replayed"):
            written = self.drain(force=True, limit=DRAIN_BATCH)
            if time.monotonic() >= deadline or not sink.breaker.up:
                break
            if written < DRAIN_BATCH and not (  # other workers' batches may be in flight
                self.wait_for_batches(deadline) and self._keeper.spool.pending()
            ):
                break

    def _failed(self, exc: BaseException) -> None:
        sink = self._sink
        sink.diagnostics.warn_once(
            f"replay:{type(exc).__name__}", "spool replay paused: %s: %s",
            type(exc).__name__, sink.diagnostics.scrub(str(exc)),
        )
