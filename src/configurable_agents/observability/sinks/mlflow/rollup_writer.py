"""Writing rollup runs (sampled-out workflows folded per bucket) from the live sink.

A closed bucket is written like a workflow: retried within the writer's budget,
idempotent by its rollup id, and spooled when MLflow is down, so exact totals stay
exact through an outage.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from configurable_agents.observability.sinks.mlflow.rollups import (
    Rollup,
    RollupAccumulator,
    write_rollup,
)

if TYPE_CHECKING:
    from configurable_agents.observability.facts.model import WorkflowFacts
    from configurable_agents.observability.sinks.mlflow.host import SinkHost
    from configurable_agents.observability.sinks.mlflow.plan import RunPlan
    from configurable_agents.observability.sinks.mlflow.spooling import SpoolKeeper


class RollupWriter:
    """Owns the sink's rollup accumulator and writes (or spools) its closed buckets."""

    def __init__(self, sink: SinkHost, keeper: SpoolKeeper, bucket_s: int) -> None:
        self._sink = sink
        self._keeper = keeper
        self.accumulator = RollupAccumulator(bucket_s)
        # durability: disk: the journal files of the workflows folded into each open bucket,
        # removed once the bucket's rollup is in MLflow or in the spool.
        self._journal: dict[Any, list[Path]] = {}
        self._lock = threading.Lock()

    def add(self, facts: WorkflowFacts, experiment: str, plan: RunPlan,
            journal: Path | None = None) -> None:
        with self._lock:
            key = self.accumulator.add(facts, experiment, plan)
            if journal is not None:
                self._journal.setdefault(key, []).append(journal)

    def write_due(self, everything: bool) -> None:
        """Write closed buckets (all with ``everything``); a failed one is spooled, not lost."""
        with self._lock:
            due = [(r, self._journal.pop(r.key, [])) for r in
                   self.accumulator.due(everything=everything)]
        for rollup, journal in due:
            self.write(rollup)
            for path in journal:  # the rollup holds their sums now (in MLflow or spooled)
                self._keeper.spool.done(path)

    def write(self, rollup: Rollup) -> None:
        sink = self._sink
        if sink.breaker.up or (sink.breaker.probe_due() and sink.probe()):
            for attempt in range(2):  # the writer retries each call; a second pass after a probe
                try:
                    experiment_id = sink.writer.experiment_id(rollup.experiment)
                    write_rollup(sink.writer, experiment_id, rollup.plan, retry=attempt > 0)
                    return
                except Exception as exc:
                    sink.diagnostics.warn_once(
                        f"rollup:{type(exc).__name__}", "MLflow rollup write failed (%s: %s)",
                        type(exc).__name__, sink.diagnostics.scrub(str(exc)),
                    )
                    if not sink.probe():
                        break
            sink.breaker.trip()
        self._keeper.put_rollup(rollup)
