"""SinkWorker: one sink on its own :class:`~configurable_agents.observability.worker.BoundedWorker`.

The pipeline hands every sink the same WorkflowFacts through that sink's own
worker, so a slow or dead destination fills only its own queue. The queue rules
(spill instead of block, sync mode, bounded close, fork restart) are the shared
BoundedWorker's; this class only says what a sink adds: ``export`` is the handler,
:meth:`~.base.Sink.spill` the fallback (the MLflow sink spools to disk), an export
that raises goes to that fallback, :meth:`~.base.Sink.tick` runs on idle workers
about twice a second (early runs of long workflows, spool replay), and the sink's
own ``flush``/``close`` run within the caller's deadline (:mod:`.deadline`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from configurable_agents.observability.diagnostics import Diagnostics
from configurable_agents.observability.sinks.base import Sink, SinkStats
from configurable_agents.observability.sinks.deadline import call_within
from configurable_agents.observability.worker import BoundedWorker

if TYPE_CHECKING:
    from configurable_agents.observability.facts.model import WorkflowFacts


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
        self._worker: BoundedWorker[WorkflowFacts] = BoundedWorker(
            sink.name,
            self._export,
            sink.spill,
            diagnostics,
            queue_size=max(1, sink.queue_size),
            workers=sink.workers,
            block_on_full=block_on_full,
            inline=inline,
            tick=sink.tick,
        )
        sink.bind_wake(self.wake)
        sink.bind_backlog(lambda: self._worker.waiting)

    # ---- pipeline side ------------------------------------------------------------------------

    def submit(self, facts: WorkflowFacts) -> None:
        self._worker.submit(facts)

    def spill(self, facts: WorkflowFacts, reason: str) -> None:
        """Hand a workflow straight to the sink's fallback (its queue is full or closing)."""
        self._worker.spill(facts, reason)

    def wake(self) -> None:
        """Let an idle worker run :meth:`Sink.tick` now (e.g. a run to start at once)."""
        self._worker.wake()

    def ensure_started(self) -> None:
        """Start the worker thread(s) if not yet running (cheap when they are)."""
        self._worker.ensure_started()

    # ---- worker side --------------------------------------------------------------------------

    def _export(self, facts: WorkflowFacts) -> None:
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

    # ---- flush / close / stats ----------------------------------------------------------------

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything submitted so far was exported (or spilled)."""
        return self._worker.wait_idle(timeout)

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self._worker.wait_idle(timeout):
            return False
        return call_within(self.sink.flush, deadline - time.monotonic(),
                           f"{self.sink.name}-flush")

    def close(self, timeout: float) -> bool:
        """Flush with a bounded wait; what is still queued then is spilled, not lost."""
        deadline = time.monotonic() + timeout
        self.sink.begin_close()
        done = self._worker.close(timeout)
        try:
            closed = call_within(self.sink.close, deadline - time.monotonic(),
                                 f"{self.sink.name}-close")
        except Exception as exc:
            self._diagnostics.internal_error(f"{self.sink.name}:close", exc)
            closed = False
        return done and closed

    @property
    def pending(self) -> int:
        return self._worker.pending

    def stats(self) -> SinkStats:
        return self.sink.counters.snapshot(queue_depth=self.pending, up=self.sink.up)
