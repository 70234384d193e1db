"""Which finished workflows are written in full, and which only count (folded into rollups).

Decided once per workflow on the pipeline thread, after its facts are built, because
the tail rules need what only the finished workflow knows: its status, its retries
and its cost. Head sampling is deterministic in the LangChain run id (like
OpenTelemetry's ``TraceIdRatioBased``), so the same workflow gets the same answer in
every process and every replay, and tests can predict it.

A workflow that is not kept still reaches every sink with ``facts.sampled_out`` set:
the MLflow sink folds its counts, tokens and cost into a rollup run, Prometheus
counts it like any other, so totals stay exact while full runs and traces are written
for a fraction of the traffic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from configurable_agents.config.pipeline_config import PipelineConfig
from configurable_agents.names import Status
from configurable_agents.observability.facts.model import WorkflowFacts

# Workflows that are always written in full, whatever the sample rate.
ALWAYS_KEPT_STATUSES = frozenset({Status.FAILED, Status.KILLED, Status.INTERRUPTED})
_SCALE = float(2**64)


@dataclass(frozen=True, slots=True)
class Sampler:
    """``sample_rate`` plus the tail rules (failed, stopped, paused, retried, costly)."""

    rate: float = 1.0
    keep_cost_usd: float | None = None
    keep_retried: bool = True

    @classmethod
    def from_config(cls, settings: PipelineConfig) -> Sampler:
        return cls(settings.sample_rate, settings.sample_keep_cost_usd,
                   settings.sample_keep_retried)

    @property
    def samples(self) -> bool:
        """False when every workflow is kept (the default): no decision to make."""
        return self.rate < 1.0

    def keep(self, facts: WorkflowFacts) -> bool:
        """Write this workflow in full? Tail rules first, then the run id's hash."""
        if not self.samples:
            return True
        if facts.status in ALWAYS_KEPT_STATUSES:
            return True
        # Computed numbers only: caller metadata (ca_metrics) can never keep a workflow.
        if self.keep_retried and facts.totals.retries > 0:
            return True
        cost = facts.totals.cost_usd
        if self.keep_cost_usd is not None and cost >= self.keep_cost_usd:
            return True
        return head_sample(facts.langchain_run_id) < self.rate


def head_sample(run_id: str) -> float:
    """A uniform number in [0, 1) fixed by the run id (the same in every process)."""
    digest = hashlib.blake2b(run_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE
