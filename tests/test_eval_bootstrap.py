"""Paired bootstrap intervals: hand-computed cases, seeded reproducibility, verdicts."""

from __future__ import annotations

import pytest

from configurable_agents.reports import bootstrap
from configurable_agents.reports.quality import EvalSide, compare_sides


def test_two_pairs_by_hand() -> None:
    # Deltas (0, 1): a resample of 2 pairs has mean 0 (p=1/4), 0.5 (p=1/2) or 1 (p=1/4),
    # so the 2.5th percentile is 0 and the 97.5th is 1 (in pp: 0 and 100).
    interval = bootstrap.accuracy_delta_pp([1, 0], [1, 1], seed=7, resamples=4000)
    assert interval.estimate == 50.0
    assert (interval.low, interval.high) == (0.0, 100.0)
    assert not interval.excludes_zero


def test_constant_differences_give_a_degenerate_interval() -> None:
    # Every example costs exactly half: every resample has ratio 0.5, so the CI is [-50, -50].
    cost = bootstrap.cost_delta_pct([2.0, 4.0, 6.0], [1.0, 2.0, 3.0], seed=1)
    assert (cost.estimate, cost.low, cost.high) == pytest.approx((-50.0, -50.0, -50.0))
    acc = bootstrap.accuracy_delta_pp([0, 0, 0], [1, 1, 1], seed=1)
    assert (acc.estimate, acc.low, acc.high) == (100.0, 100.0, 100.0)
    assert acc.excludes_zero


def test_same_seed_same_interval_other_seed_may_differ() -> None:
    base = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
    cand = [1, 1, 1, 0, 1, 1, 1, 1, 1, 1]
    first = bootstrap.accuracy_delta_pp(base, cand, seed=42)
    assert first == bootstrap.accuracy_delta_pp(base, cand, seed=42)
    assert first.estimate == pytest.approx(20.0)
    assert first.low <= first.estimate <= first.high


def test_errors_on_empty_input() -> None:
    with pytest.raises(ValueError, match="no paired examples"):
        bootstrap.accuracy_delta_pp([], [])
    with pytest.raises(ValueError, match="no cost"):
        bootstrap.cost_delta_pct([0.0], [1.0])


def side(label: str, rows: dict[str, tuple[bool, float]], digest: str = "d1") -> EvalSide:
    return EvalSide(run_id=label, label=label, dataset="qa", digest=digest,
                    rows={i: {"id": i, "correct": ok, "cost_usd": c}
                          for i, (ok, c) in rows.items()})


def test_pairs_by_id_and_writes_the_verdict() -> None:
    base = side("v1.0.0", {"a": (True, 2.0), "b": (True, 2.0), "c": (False, 2.0), "x": (True, 1)})
    cand = side("v2.0.0", {"c": (False, 1.0), "a": (True, 1.0), "b": (True, 1.0), "y": (True, 1)})
    result = compare_sides(base, cand, seed=3, resamples=2000)
    assert result.paired == 3
    assert result.accuracy == (2 / 3, 2 / 3)
    assert result.cost_per_correct == (3.0, 1.5)
    assert result.cost_per_correct_delta_pct == pytest.approx(-50.0)
    assert result.verdict == ("v2.0.0: -50% cost [-50%, -50%], accuracy +0.0 pp [+0.0, +0.0]: "
                              "no significant quality change (95% CI, 3 paired examples)")
    assert any("one side only" in note for note in result.notes)
    as_json = result.to_dict()
    assert as_json["accuracy_delta_pp"] == {"estimate": 0.0, "low": 0.0, "high": 0.0}
    assert as_json["verdict"] == result.verdict


def test_significant_loss_is_called_out() -> None:
    base = side("v1", {str(i): (True, 1.0) for i in range(10)})
    cand = side("v2", {str(i): (i >= 5, 1.0) for i in range(10)}, digest="d2")
    result = compare_sides(base, cand)
    assert result.accuracy_delta_pp.estimate == -50.0
    assert result.accuracy_delta_pp.high < 0
    assert result.verdict.endswith("significantly less accurate (95% CI, 10 paired examples)")
    assert any("datasets differ" in note for note in result.notes)
