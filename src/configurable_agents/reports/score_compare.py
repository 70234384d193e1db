"""Feedback and online scores in ``report compare``, with bootstrap 95% intervals.

A score (``feedback/<name>``, ``quality/<scorer>``) is compared over *units*: when every
scored run on both sides is an evaluation example run (tag ``eval_example_id``), a unit is
an example and the two sides are paired by example id, exactly as accuracy is
(:mod:`.quality`); production runs have no pairing key, so a unit is a run and each side is
resampled on its own (wider intervals). A unit's value is the mean of its assessments (a
run's ``feedback/<name>``, several runs of one example averaged, weighted by count); the
delta is the difference of the unit means. ``count`` is the number of assessments read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from configurable_agents.names import EvalTag
from configurable_agents.reports import bootstrap
from configurable_agents.reports.model import RunRow
from configurable_agents.reports.scores import ScoreDelta


def _units(rows: Sequence[RunRow], name: str, by_example: bool) -> dict[str, tuple[float, int]]:
    """``{unit: (mean, count)}`` of one score: per example id, or per run."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        if name not in row.scores:
            continue
        mean, count = row.scores[name]
        unit = row.tags[EvalTag.EVAL_EXAMPLE_ID] if by_example else row.run_id
        sums[unit] += mean * count
        counts[unit] += count
    return {u: (sums[u] / counts[u], counts[u]) for u in sums}


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def compare_scores(
    baseline: Sequence[RunRow], candidate: Sequence[RunRow], *,
    seed: int = bootstrap.DEFAULT_SEED, resamples: int = bootstrap.DEFAULT_RESAMPLES,
) -> tuple[ScoreDelta, ...]:
    """Every score either side carries, with its delta interval (workflow rows only)."""
    sides = [[r for r in rows if r.kind == "workflow" and r.scores]
             for rows in (baseline, candidate)]
    names = sorted({n for rows in sides for r in rows for n in r.scores})
    by_example = bool(sides[0] and sides[1]) and all(
        r.tags.get(EvalTag.EVAL_EXAMPLE_ID) for rows in sides for r in rows)
    out = []
    for name in names:
        b_units, c_units = (_units(rows, name, by_example) for rows in sides)
        if by_example:
            ids = sorted(set(b_units) & set(c_units))
            b_vals = [b_units[i][0] for i in ids]
            c_vals = [c_units[i][0] for i in ids]
            units = (len(ids), len(ids))
        else:
            b_vals = [v for v, _ in b_units.values()]
            c_vals = [v for v, _ in c_units.values()]
            units = (len(b_vals), len(c_vals))
        delta = None
        if b_vals and c_vals:
            delta = bootstrap.mean_delta(b_vals, c_vals, paired=by_example, seed=seed,
                                         resamples=resamples)
        out.append(ScoreDelta(
            name, _mean(b_vals), _mean(c_vals), sum(n for _, n in b_units.values()),
            sum(n for _, n in c_units.values()), "example" if by_example else "unpaired",
            units, delta))
    return tuple(out)
