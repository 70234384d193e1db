"""Feedback and online-evaluation scores of workflow runs, summed per report group.

The write side (``configurable_agents.feedback`` and the online-evaluation sink) leaves on
each parent run the mean of a score's valid assessments (``feedback/<name>``,
``quality/<scorer>``) and how many there are (``.../count``). A group's score is the mean
over all of its runs' assessments (each run's mean weighted by its count), so a run scored
by three people weighs three times a run scored once.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from configurable_agents.names import Quality
from configurable_agents.reports import bootstrap

PREFIXES = (Quality.FEEDBACK_PREFIX, Quality.ONLINE_PREFIX)
Pairing = Literal["example", "unpaired"]


@dataclass(frozen=True, slots=True)
class ScoreStat:
    """One score over a group: the mean of its assessments and how many there were."""

    name: str
    mean: float
    count: int

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "count": self.count}


def run_scores(metrics: Mapping[str, float]) -> dict[str, tuple[float, int]]:
    """``{score metric: (mean, count)}`` of one run's metrics (a count of 1 when missing)."""
    out: dict[str, tuple[float, int]] = {}
    for key, value in metrics.items():
        if not key.startswith(PREFIXES) or key.endswith(Quality.COUNT_SUFFIX):
            continue
        if value is None or math.isnan(value):
            continue
        count = metrics.get(key + Quality.COUNT_SUFFIX)
        n = 1 if count is None or math.isnan(count) or count < 1 else int(count)
        out[key] = (float(value), n)
    return out


def summarize_scores(per_run: Iterable[Mapping[str, tuple[float, int]]]) -> tuple[ScoreStat, ...]:
    """Count-weighted mean and total count of each score over runs, by name."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for scores in per_run:
        for name, (mean, count) in scores.items():
            sums[name] += mean * count
            counts[name] += count
    return tuple(ScoreStat(name, sums[name] / counts[name], counts[name])
                 for name in sorted(sums) if counts[name])


def score_names(groups: Iterable[tuple[ScoreStat, ...]]) -> list[str]:
    """Every score name appearing in any group, sorted (the report's score columns)."""
    return sorted({s.name for scores in groups for s in scores})


@dataclass(frozen=True, slots=True)
class ScoreDelta:
    """One score, baseline vs candidate: unit means, assessment counts and the delta."""

    name: str
    baseline_mean: float | None
    candidate_mean: float | None
    baseline_count: int
    candidate_count: int
    pairing: Pairing
    units: tuple[int, int]  # examples paired (same on both sides) or runs per side
    delta: bootstrap.Interval | None  # None when a side has no value

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.name, "baseline": self.baseline_mean,
                "candidate": self.candidate_mean, "baseline_count": self.baseline_count,
                "candidate_count": self.candidate_count, "pairing": self.pairing,
                "units": list(self.units),
                "delta": self.delta.as_dict() if self.delta else None}
