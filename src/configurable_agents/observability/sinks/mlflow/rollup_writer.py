"""Writing rollup runs (sampled-out workflows folded per bucket) from the live sink.

A closed bucket is written like a workflow: retried within the writer's budget,
idempotent by its rollup id, and spooled when MLflow is down, so exact totals stay
exact through an outage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from configurable_agents.observability.sinks.mlflow.rollups import (
    Rollup,
    RollupAccumulator,
    write_rollup,
)

if TYPE_CHECKING:
    from configurable_agents.observability.sinks.mlflow.sink import MlflowSink
    from configurable_agents.observability.sinks.mlflow.spooling import SpoolKeeper


class RollupWriter:
    """Owns the sink's rollup accumulator and writes (or spools) its closed buckets."""

    def __init__(self, sink: MlflowSink, keeper: SpoolKeeper, bucket_s: int) -> None:
        self._sink = sink
        self._keeper = keeper
        self.accumulator = RollupAccumulator(bucket_s)

    def write_due(self, everything: bool) -> None:
        """Write closed buckets (all with ``everything``); a failed one is spooled, not lost."""
        for rollup in self.accumulator.due(everything=everything):
            self.write(rollup)

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
