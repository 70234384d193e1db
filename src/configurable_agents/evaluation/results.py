"""What an evaluation produces: one result per example, and the summary metrics.

The metrics are computed here, from plain numbers, so they are the same whether they
are logged to MLflow, printed by the CLI or recomputed by ``report compare``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from configurable_agents.evaluation.dataset import Dataset
from configurable_agents.names import EvalMetric
from configurable_agents.scoring import Score


@dataclass(slots=True)
class ExampleResult:
    id: str
    inputs: dict[str, Any]
    expected: Any
    output: Any = None
    error: str | None = None
    latency_s: float = 0.0
    cost_usd: float | None = None  # None: no MLflow run, or some call had no price
    run_id: str | None = None
    trace_id: str | None = None
    scores: dict[str, Score] = field(default_factory=dict)
    primary: str = ""

    @property
    def correct(self) -> bool:
        score = self.scores.get(self.primary)
        return self.error is None and score is not None and score.correct

    @property
    def unscorable(self) -> list[str]:
        """Names of the scorers that could not score this example (counted apart)."""
        return [name for name, score in self.scores.items() if score.unscorable]

    @property
    def score(self) -> float:
        score = self.scores.get(self.primary)
        return score.value if score is not None and self.error is None else 0.0

    def row(self) -> dict[str, Any]:
        """One row of the per-example table (text cells, so the MLflow UI shows them)."""
        row: dict[str, Any] = {
            "id": self.id,
            "inputs": json.dumps(self.inputs, ensure_ascii=False, default=str),
            "expected": _cell(self.expected),
            "output": _cell(self.output),
            "score": self.score,
            "correct": self.correct,
            "cost_usd": self.cost_usd,
            "latency_s": round(self.latency_s, 6),
            "error": self.error or "",
            "unscorable": ",".join(self.unscorable),
            "run_id": self.run_id or "",
            "trace_id": self.trace_id or "",
        }
        for name, score in self.scores.items():
            row[f"{name}_score"] = score.value
        return row


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), without numpy."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_metrics(examples: list[ExampleResult]) -> dict[str, float]:
    """accuracy, counts, latency mean/p95, cost totals and cost per correct answer."""
    n = len(examples)
    correct = sum(e.correct for e in examples)
    latencies = [e.latency_s for e in examples]
    costs = [e.cost_usd for e in examples]
    metrics: dict[str, float] = {
        EvalMetric.EXAMPLES: float(n),
        EvalMetric.CORRECT: float(correct),
        EvalMetric.ACCURACY: correct / n if n else math.nan,
        EvalMetric.ERRORS: float(sum(e.error is not None for e in examples)),
        EvalMetric.UNSCORABLE: float(sum(bool(e.unscorable) for e in examples)),
        EvalMetric.LATENCY_MEAN_S: sum(latencies) / n if n else math.nan,
        EvalMetric.LATENCY_P95_S: percentile(latencies, 95),
    }
    if costs and all(c is not None for c in costs):
        total = sum(c for c in costs if c is not None)
        metrics[EvalMetric.TOTAL_COST_USD] = total
        metrics[EvalMetric.COST_PER_EXAMPLE_USD] = total / n
        if correct:
            metrics[EvalMetric.COST_PER_CORRECT_USD] = total / correct
    return metrics


@dataclass(slots=True)
class EvaluationResult:
    """``evaluate()``'s answer: the MLflow evaluation run and every example's result."""

    run_id: str
    experiment_id: str
    dataset: Dataset
    examples: list[ExampleResult]
    metrics: dict[str, float]
    model_id: str | None = None
    judge_cost_usd: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.metrics[EvalMetric.ACCURACY]

    @property
    def cost_per_correct_usd(self) -> float | None:
        return self.metrics.get(EvalMetric.COST_PER_CORRECT_USD)

    def table(self) -> list[dict[str, Any]]:
        return [e.row() for e in self.examples]
