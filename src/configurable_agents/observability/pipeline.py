"""The pipeline: finished records -> WorkflowFacts (once) -> every enabled sink.

The caller only does a ``put_nowait`` of the finished record. One pipeline
thread prices, redacts and bounds it (:class:`FactsBuilder`) and hands the same
facts to each sink's own worker (:class:`SinkWorker`), so sinks fail, retry,
spool and replay on their own. When the pipeline's queue is full, records go to
an overflow thread that builds their facts and lets each sink *spill* them
(MLflow: to the spool on disk), never dropped and never blocking the caller
(unless ``block_on_full``). In synchronous mode (``async_logging: false``) the
same code runs on the caller. At interpreter exit, every live pipeline gets a
bounded chance to flush; what is still queued then is spilled. The facts thread,
the overflow thread and every sink's worker are the same
:class:`~configurable_agents.observability.worker.BoundedWorker`, so queueing,
spilling, bounded close and restart after ``fork()`` are written once.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from dataclasses import dataclass, replace
from typing import Any

from configurable_agents.config.pipeline_config import PipelineConfig
from configurable_agents.observability import forksafe
from configurable_agents.observability.capture.records import WorkflowRecord
from configurable_agents.observability.diagnostics import Diagnostics
from configurable_agents.observability.durability import Journal
from configurable_agents.observability.facts.build import FactOptions, build_start_facts
from configurable_agents.observability.facts.builder import FactsBuilder
from configurable_agents.observability.facts.model import WorkflowStart
from configurable_agents.observability.sampling import Sampler
from configurable_agents.observability.sinks.base import Sink, SinkStats
from configurable_agents.observability.sinks.worker import SinkWorker
from configurable_agents.observability.worker import FULL, BoundedWorker


@dataclass(slots=True)
class _Finished:
    workflow: WorkflowRecord
    options: FactOptions
    on_disk: threading.Event | None = None  # durability: disk: set once journaled


class Pipeline:
    """Owns the facts worker, its overflow worker and one :class:`SinkWorker` per sink."""

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
        self.journal = Journal(settings.durability, self.sinks)
        inline = not settings.async_logging
        self.workers = [
            SinkWorker(s, diagnostics, block_on_full=settings.block_on_full,
                       inline=inline or s.inline_export)
            for s in self.sinks
        ]
        for sink in self.sinks:
            sink.bind_diagnostics(diagnostics)
            sink.bind_health(self.sink_stats)
        # Records the facts queue has no room for: facts built off the caller, then spilled.
        # Neither worker spills an in-flight record at close: it is still being built and
        # handed to the sinks, whose own close spills what they hold.
        self._overflow: BoundedWorker[_Finished] = BoundedWorker(
            "overflow", self._spill, self._process, diagnostics, queue_size=0,
            spill_inflight=False,
        )
        self._facts: BoundedWorker[_Finished] = BoundedWorker(
            "pipeline", self._process, self._process, diagnostics,
            queue_size=settings.queue_size, block_on_full=settings.block_on_full,
            inline=inline, on_full=self._overflowed, spill_inflight=False,
        )
        self._lock = threading.Lock()
        self._dropped = 0  # not logged on purpose: tenant refused (fail closed)
        self._failed = 0  # facts could not be built
        if self.sinks:
            _register_atexit(self)
        forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        """Fresh counters in a forked child; the workers reset their own queues and threads."""
        self._lock = threading.Lock()
        self._dropped = self._failed = 0

    @property
    def _closed(self) -> bool:
        return self._facts.closed

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
        if self.settings.async_logging and not self._closed:
            item.on_disk = self.journal.handoff()
        if self._facts.submit(item):
            self.journal.wait(item.on_disk)

    def _overflowed(self, item: _Finished) -> None:
        self._overflow.submit(item)
        self.diagnostics.warn_once(
            "queue_full",
            "export queue full (%d workflows; a backend is slow or down): spilling to each "
            "sink's fallback (MLflow: the spool). Raise observability.pipeline.queue_size "
            "if this is normal load.",
            self.settings.queue_size,
        )

    # ---- pipeline threads ---------------------------------------------------------------------

    def _spill(self, item: _Finished) -> None:
        self._process(item, spill_reason=FULL)

    def _process(self, item: _Finished, spill_reason: str | None = None) -> None:
        try:
            facts = self.builder.build(item.workflow, item.options)
            if not self.sampler.keep(facts):
                facts = replace(facts, sampled_out=True)
            self.journal.write(facts)
            if item.on_disk is not None:
                item.on_disk.set()
            for worker in self.workers:
                if spill_reason is None:
                    worker.submit(facts)
                else:
                    worker.spill(facts, spill_reason)
        except Exception as exc:
            self.diagnostics.internal_error("facts", exc)
            with self._lock:
                self._failed += 1
        finally:
            if item.on_disk is not None:
                item.on_disk.set()  # never leave a caller waiting (facts failed or dropped)

    # ---- flush / close / stats ----------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """True when every workflow finished so far is written by every sink."""
        deadline = time.monotonic() + timeout
        if not self._facts.wait_idle(timeout):
            return False
        if not self._overflow.wait_idle(max(0.0, deadline - time.monotonic())):
            return False
        done = True
        for worker in self.workers:
            done = worker.flush(max(0.0, deadline - time.monotonic())) and done
        return done

    def close(self, timeout: float) -> bool:
        """Flush with a bounded wait; whatever is still queued then is spilled, not lost."""
        deadline = time.monotonic() + timeout
        done = self._facts.close(timeout)
        done = self._overflow.close(max(0.0, deadline - time.monotonic())) and done
        for worker in self.workers:
            done = worker.close(max(0.0, deadline - time.monotonic())) and done
        return done

    def sink_stats(self) -> dict[str, SinkStats]:
        return {worker.sink.name: worker.stats() for worker in self.workers}

    @property
    def pending(self) -> int:
        own = self._facts.pending + self._overflow.pending
        return own + sum(worker.pending for worker in self.workers)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "queued": self._facts.submitted,
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
