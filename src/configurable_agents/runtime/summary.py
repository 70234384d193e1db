"""The ``run`` summary, taken from the workflow's facts rather than read back from MLflow.

:class:`SummarySink` is an ordinary sink the config runner adds to the handler it owns:
it keeps the last few workflows' headline numbers, so the summary exists whichever
sinks are on (JSONL only, MLflow off) and costs no backend round trip.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from uuid import UUID

from configurable_agents.observability.facts.model import WorkflowFacts
from configurable_agents.observability.sinks.base import Sink

KEPT = 64  # a runner owns one handler per run; a little slack for shared ones


@dataclass(frozen=True)
class RunSummary:
    """A workflow's headline numbers, from its facts."""

    run_id: str | None  # the MLflow parent run id when the MLflow sink is on
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None when some call could not be priced
    duration_s: float
    llm_calls: int
    status: str


class SummarySink(Sink):
    """Keeps the facts' totals of the last :data:`KEPT` workflows, by LangChain run id."""

    name = "summary"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._kept: OrderedDict[UUID, WorkflowFacts] = OrderedDict()

    def export(self, facts: WorkflowFacts) -> None:
        with self._lock:
            self._kept[facts.run_id] = facts
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        self.counters.add("exported")

    def summary(self, root_id: UUID, mlflow_run_id: str | None) -> RunSummary | None:
        with self._lock:
            facts = self._kept.get(root_id)
        if facts is None:
            return None
        totals = facts.totals
        return RunSummary(
            run_id=mlflow_run_id,
            input_tokens=totals.usage.input,
            output_tokens=totals.usage.output,
            cost_usd=None if totals.unpriced_models else totals.cost_usd,
            duration_s=totals.duration_s,
            llm_calls=totals.llm_calls,
            status=facts.status,
        )
