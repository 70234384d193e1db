"""DSPy's evaluation pieces as ours: valset -> Dataset, program -> app, metric -> scorer.

With them a DSPy program is evaluated by :func:`configurable_agents.evaluation.evaluate`
like any app: one workflow run per example (its DSPy LM calls land in it, once), one
evaluation run with accuracy, cost per correct answer and the per-example table, so
``report compare`` pairs a baseline and an optimized program example by example.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableLambda

from configurable_agents.evaluation.dataset import Dataset
from configurable_agents.scoring import Example, Score

__all__ = ["DspyMetricScorer", "dspy_app", "dspy_dataset"]


def dspy_dataset(examples: Sequence[Any], name: str) -> tuple[Dataset, dict[str, Any]]:
    """The ``dspy.Example``s as a Dataset, and each example id's original ``dspy.Example``.

    An id is a short hash of the example's inputs and labels (a repeat gets ``-2``,
    ``-3``...), so the same valset gives the same ids on every run and in any order:
    that is what pairs a baseline and an optimized evaluation.
    """
    rows: list[Example] = []
    originals: dict[str, Any] = {}
    for position, example in enumerate(examples, start=1):
        try:
            inputs, labels = dict(example.inputs()), dict(example.labels())
        except (ValueError, AttributeError) as exc:
            raise ValueError(f"valset example {position}: not a dspy.Example with inputs "
                             f"(call .with_inputs(...)): {exc}") from None
        if not inputs:
            raise ValueError(f"valset example {position}: no input fields")
        canonical = json.dumps([inputs, labels], sort_keys=True, default=str)
        base = hashlib.sha256(canonical.encode()).hexdigest()[:12]
        example_id, repeat = base, 1
        while example_id in originals:
            repeat += 1
            example_id = f"{base}-{repeat}"
        originals[example_id] = example
        rows.append(Example(id=example_id, inputs=inputs, expected=labels))
    return Dataset(name=name, examples=tuple(rows)), originals


def dspy_app(program: Any, name: str) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
    """``fn(inputs, config)``: ``program(**inputs)`` inside one LangChain run of ``config``.

    The run is the example's workflow run; the DSPy callback finds it through
    langchain-core's context variable and records the program's LM calls on it.
    """
    runnable = RunnableLambda(lambda inputs: program(**inputs), name=name)
    return lambda inputs, config: runnable.invoke(inputs, config)  # type: ignore[arg-type]


@dataclass
class DspyMetricScorer:
    """A DSPy metric ``metric(example, prediction)`` as a scorer, with DSPy's pass rule.

    An example is correct when the metric passes as a DSPy optimizer counts it: its
    value is at least ``threshold`` when one is set (``metric_threshold``), else truthy.
    The raw values are kept per example id, for DSPy's own 0-100 score.
    """

    metric: Callable[..., Any]
    originals: dict[str, Any]
    threshold: float | None = None
    name: str = ""
    raw: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = getattr(self.metric, "__name__", None) or "dspy_metric"

    def score(self, example: Example, output: Any, config: dict[str, Any]) -> Score:
        value = self.metric(self.originals[example.id], output)
        if not isinstance(value, bool | int | float):
            raise TypeError(f"DSPy metric {self.name!r} returned {type(value).__name__}; "
                            "return a bool or a number")
        self.raw[example.id] = float(value)
        passed = value >= self.threshold if self.threshold is not None else bool(value)
        return Score(1.0 if passed else 0.0, f"{self.name} = {value!r}")

    def dspy_score(self, ids: Sequence[str]) -> float:
        """DSPy Evaluate's score: the metric's mean over the examples x 100 (failures 0)."""
        if not ids:
            return 0.0
        return round(100 * sum(self.raw.get(i, 0.0) for i in ids) / len(ids), 2)
