"""``durability``: what a finished workflow survives (``memory``: fastest; ``disk``: SIGKILL).

With ``memory`` (the default) a finished workflow lives in the pipeline's queue until
its sinks export it: a SIGKILL (or an OOM kill, a power cut) loses the queue. With
``disk`` the caller's root-end callback waits until the pipeline has built the
workflow's facts and every sink that can replay has written it to disk (the MLflow
sink: a spool file claimed by this process); the file is removed when the export
lands, or when the rollup that folded it (a sampled-out workflow) is written. After a
crash the claim's owner is dead, so the next drain or ``configurable-agents sync``
writes it, idempotently: nothing that finished is lost and nothing is written twice.

The price is paid on the caller's thread (a hand-off to the pipeline thread and one
fsynced file per workflow); ``make bench`` measures it against ``memory`` in the
same run (docs/BENCHMARKS.md). The wait is bounded (``DISK_WAIT_S``): a stuck disk
never stalls the app for longer.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from configurable_agents.observability.facts.model import WorkflowFacts
    from configurable_agents.observability.sinks.base import Sink

Durability = Literal["memory", "disk"]
DISK_WAIT_S = 5.0


class Journal:
    """The pipeline's hook: ``handoff`` on the caller, ``write`` on the pipeline thread."""

    def __init__(self, mode: Durability, sinks: Sequence[Sink]) -> None:
        self.on_disk = mode == "disk"
        self._keepers = [s for s in sinks if callable(getattr(s, "journal", None))]

    def handoff(self) -> threading.Event | None:
        """An event the pipeline sets once the workflow is on disk (None: nothing to wait)."""
        return threading.Event() if self.on_disk and self._keepers else None

    @staticmethod
    def wait(written: threading.Event | None) -> None:
        if written is not None:
            written.wait(DISK_WAIT_S)

    def write(self, facts: WorkflowFacts) -> None:
        """Before any export: every sink that can replay keeps the workflow on disk."""
        if not self.on_disk:
            return
        for sink in self._keepers:
            sink.journal(facts)  # type: ignore[attr-defined]
