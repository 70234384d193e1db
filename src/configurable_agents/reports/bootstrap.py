"""Paired bootstrap: confidence intervals for the difference between two evaluations.

Both evaluations scored the same examples, so we resample *examples* (pairs), not
each side on its own: the pairing removes the between-example variance (easy vs hard
questions) and gives much tighter intervals than two unpaired samples would. Seeded,
so the same data always gives the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate and its percentile-bootstrap interval."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _interval(estimate: float, samples: np.ndarray) -> Interval:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high))


def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def accuracy_delta_pp(
    baseline_correct: Sequence[float], candidate_correct: Sequence[float], *,
    seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
) -> Interval:
    """Candidate minus baseline accuracy, in percentage points, over paired examples."""
    diff = np.asarray(candidate_correct, float) - np.asarray(baseline_correct, float)
    if diff.size == 0:
        raise ValueError("no paired examples")
    samples = diff[_indices(diff.size, resamples, seed)].mean(axis=1) * 100
    return _interval(diff.mean() * 100, samples)


def cost_delta_pct(
    baseline_cost: Sequence[float], candidate_cost: Sequence[float], *,
    seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
) -> Interval:
    """Relative change of total cost (candidate / baseline - 1), in percent, paired."""
    base = np.asarray(baseline_cost, float)
    cand = np.asarray(candidate_cost, float)
    if base.size == 0 or base.sum() <= 0:
        raise ValueError("the baseline has no cost to compare with")
    idx = _indices(base.size, resamples, seed)
    base_sums = base[idx].sum(axis=1)
    ratio = np.divide(cand[idx].sum(axis=1), base_sums,
                      out=np.full(resamples, np.nan), where=base_sums > 0)
    samples = (ratio[~np.isnan(ratio)] - 1) * 100
    return _interval((cand.sum() / base.sum() - 1) * 100, samples)


def mean_delta(
    baseline: Sequence[float], candidate: Sequence[float], *, paired: bool,
    seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
) -> Interval:
    """Candidate minus baseline mean of a score (feedback, online scorer).

    ``paired``: the i-th values are the same example on both sides (resampled together,
    as for accuracy); otherwise each side is resampled on its own (two independent samples
    of production runs, so the interval is wider).
    """
    base = np.asarray(baseline, float)
    cand = np.asarray(candidate, float)
    if base.size == 0 or cand.size == 0:
        raise ValueError("a side has no values")
    if paired:
        if base.size != cand.size:
            raise ValueError("paired samples differ in length")
        diff = cand - base
        samples = diff[_indices(diff.size, resamples, seed)].mean(axis=1)
        return _interval(diff.mean(), samples)
    rng = np.random.default_rng(seed)
    base_means = base[rng.integers(0, base.size, size=(resamples, base.size))].mean(axis=1)
    cand_means = cand[rng.integers(0, cand.size, size=(resamples, cand.size))].mean(axis=1)
    return _interval(cand.mean() - base.mean(), cand_means - base_means)
