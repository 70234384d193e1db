"""What the online judge spent scoring each workflow: tokens and cost, from its own facts.

The judge's calls run through their own handler; this sink rides on that handler and keeps,
per scored workflow (the judge run's ``judged_langchain_run_id`` tag), the tokens and cost
the facts layer computed for the judge's runs: the same pricing as every workflow's cost.
The online-evaluation sink takes them when it writes the workflow's scores and logs them on
the workflow's parent run (``judge_input_tokens``, ``judge_output_tokens``,
``judge_cost_usd``), apart from the workflow's own ``total_*`` metrics.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from configurable_agents.names import Quality
from configurable_agents.observability.sinks.base import Sink

if TYPE_CHECKING:
    from configurable_agents.observability.facts.model import WorkflowFacts


@dataclass(frozen=True, slots=True)
class JudgeSpend:
    """The judge's tokens and cost for one scored workflow (summed over its judge calls)."""

    input_tokens: int
    output_tokens: int
    cost_usd: float
    priced: bool  # False when a judge model had no price: no cost is claimed

    def plus(self, other: JudgeSpend) -> JudgeSpend:
        return JudgeSpend(self.input_tokens + other.input_tokens,
                          self.output_tokens + other.output_tokens,
                          self.cost_usd + other.cost_usd, self.priced and other.priced)

    def metrics(self) -> dict[str, float]:
        values = {Quality.JUDGE_INPUT_TOKENS: float(self.input_tokens),
                  Quality.JUDGE_OUTPUT_TOKENS: float(self.output_tokens)}
        if self.priced:
            values[Quality.JUDGE_COST_USD] = self.cost_usd
        return values


class JudgeUsageSink(Sink):
    """Collects the judge handler's finished runs by the workflow they scored (bounded)."""

    name: ClassVar[str] = "online_eval_judge_usage"

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = max(1, capacity)
        self._lock = threading.Lock()
        self._spent: OrderedDict[str, JudgeSpend] = OrderedDict()

    def export(self, facts: WorkflowFacts) -> None:
        judged = facts.caller.tags.get(Quality.JUDGED_RUN_TAG)
        if not judged:
            return
        totals = facts.totals
        spend = JudgeSpend(totals.usage.input, totals.usage.output, totals.cost_usd,
                           not totals.unpriced_models)
        with self._lock:
            earlier = self._spent.pop(judged, None)
            self._spent[judged] = earlier.plus(spend) if earlier is not None else spend
            while len(self._spent) > self.capacity:  # never taken (its scores expired)
                self._spent.popitem(last=False)
                self.counters.add("dropped")
        self.counters.add("exported")

    def peek(self, langchain_run_id: str) -> JudgeSpend | None:
        with self._lock:
            return self._spent.get(langchain_run_id)

    def take(self, langchain_run_id: str) -> JudgeSpend | None:
        with self._lock:
            return self._spent.pop(langchain_run_id, None)
