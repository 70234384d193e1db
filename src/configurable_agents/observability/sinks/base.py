"""The sink protocol: where finished workflow facts go (MLflow, OpenTelemetry, Prometheus, JSONL).

Shaped like OpenTelemetry's ``SpanExporter`` behind a ``BatchSpanProcessor``: a
sink implements :meth:`Sink.export` for one workflow and the pipeline gives each
sink its own bounded queue and worker thread(s) (:mod:`.worker`), so a slow or
dead destination never holds back another. Retry, circuit breaking and spooling
are the sink's own policy: MLflow spools and replays, a JSONL file has nothing
to retry, an OTLP collector is not idempotent so OpenTelemetry counts its losses.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from configurable_agents.observability.diagnostics import Diagnostics

if TYPE_CHECKING:
    from uuid import UUID

    from configurable_agents.observability.facts.model import WorkflowFacts, WorkflowStart


@dataclass(slots=True)
class SinkStats:
    """One sink's counters and health, as ``handler.stats().sinks[name]`` shows them."""

    exported: int = 0  # workflows written
    failed: int = 0  # workflows this sink could not write and did not keep
    dropped: int = 0  # workflows deliberately not written (counted loss)
    spooled: int = 0  # workflows kept on disk for a later replay
    replayed: int = 0  # spooled workflows written later
    rejected: int = 0  # workflows the destination refused as invalid (set aside)
    queue_depth: int = 0  # workflows waiting for this sink's worker
    up: bool = True  # the destination answered last time

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Counters:
    """Thread-safe counters a sink increments; :meth:`snapshot` gives a :class:`SinkStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = SinkStats()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self._values, name, getattr(self._values, name) + amount)

    def get(self, name: str) -> int:
        with self._lock:
            return int(getattr(self._values, name))

    def snapshot(self, *, queue_depth: int = 0, up: bool = True) -> SinkStats:
        with self._lock:
            values = SinkStats(**self._values.as_dict())
        values.queue_depth = queue_depth
        values.up = up
        return values


class Sink(ABC):
    """One destination. Subclasses set :attr:`name` and implement :meth:`export`.

    Threading contract: :meth:`on_start` runs on the caller's thread (O(1), no I/O);
    :meth:`export` and :meth:`spill` run on this sink's worker thread(s), never the
    caller's; with ``workers > 1`` :meth:`export` must be safe to call concurrently.
    """

    name: ClassVar[str] = "sink"
    #: Worker threads the pipeline runs for this sink (each workflow goes to one of them).
    workers: int = 1
    #: Bounded queue in front of the workers; past it :meth:`spill` decides.
    queue_size: int = 1000
    #: True for a sink whose export only hands work to a bounded queue of its own (OTel's
    #: BatchSpanProcessor): it runs on the pipeline's thread, no queue of ours in front.
    inline_export: ClassVar[bool] = False

    def __init__(self) -> None:
        self.counters = Counters()
        self.diagnostics = Diagnostics()
        self._health: Callable[[], Mapping[str, SinkStats]] | None = None
        self._wake: Callable[[], None] | None = None
        self._backlog: Callable[[], int] | None = None

    @abstractmethod
    def export(self, facts: WorkflowFacts) -> None:
        """Write one finished workflow. Raising counts it as failed (and logs once)."""

    def on_start(self, start: WorkflowStart) -> None:  # noqa: B027
        """A root invocation began (caller thread): for sinks that show running workflows."""

    def on_finish(self, run_id: UUID) -> None:  # noqa: B027
        """A root invocation ended (caller thread, O(1)); its facts follow via :meth:`export`."""

    def spill(self, facts: WorkflowFacts, reason: str) -> None:
        """The queue is full or the process is exiting: keep the workflow if possible.

        The default counts it as dropped; the MLflow sink spools it to disk instead.
        """
        self.counters.add("dropped")

    def tick(self) -> None:  # noqa: B027
        """Periodic work on an idle worker, about twice a second (retries, replays)."""

    def flush(self, timeout: float) -> bool:
        """After the queue has drained: push out anything buffered inside the sink."""
        return True

    def begin_close(self) -> None:  # noqa: B027
        """``close`` has begun: exports still in flight finish after it, and no tick or
        flush will follow, so they must not leave work for later (e.g. batched spans)."""

    def close(self, timeout: float) -> bool:
        """Flush and release resources (threads, files, sockets). Idempotent."""
        return self.flush(timeout)

    @property
    def up(self) -> bool:
        """Did the destination answer last time (False while a circuit breaker is open)?"""
        return True

    def bind_diagnostics(self, diagnostics: Diagnostics) -> None:
        """Share the pipeline's internal-error counter and log-once warnings."""
        self.diagnostics = diagnostics

    def bind_wake(self, wake: Callable[[], None]) -> None:
        """The worker's wake-up: lets :meth:`on_start` have :meth:`tick` run at once."""
        self._wake = wake

    def wake(self) -> None:
        if self._wake is not None:
            self._wake()

    def bind_backlog(self, backlog: Callable[[], int]) -> None:
        """The worker's count of queued workflows no thread has taken yet."""
        self._backlog = backlog

    def backlog(self) -> int:
        """Workflows waiting in this sink's queue: background work yields to them."""
        return self._backlog() if self._backlog is not None else 0

    def bind_health(self, health: Callable[[], Mapping[str, SinkStats]]) -> None:
        """Give the sink a view of every sink's stats (the Prometheus sink exports them)."""
        self._health = health

    def pipeline_health(self) -> Mapping[str, SinkStats]:
        return self._health() if self._health is not None else {}
