"""Quality next to cost: compare two evaluation runs example by example.

An evaluation run (``configurable_agents.kind = evaluation``) carries a per-example
table (``eval_results.json``: id, correct, cost, ...). Two of them on the same dataset
are paired by example id, and the accuracy and cost deltas get paired-bootstrap 95%
intervals (:mod:`.bootstrap`), summed up in one verdict line.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from configurable_agents.names import Artifact, EvalMetric, EvalTag, Kind, Tag
from configurable_agents.reports import bootstrap
from configurable_agents.reports.access import open_client, select_experiments
from configurable_agents.reports.render import printable
from configurable_agents.reports.reporting import ReportError, parse_run_ids


@dataclass(frozen=True, slots=True)
class EvalSide:
    run_id: str
    label: str  # workflow version, else the run name
    dataset: str
    digest: str
    rows: dict[str, dict[str, Any]]  # example id -> table row


@dataclass(frozen=True)
class QualityComparison:
    baseline: EvalSide
    candidate: EvalSide
    paired: int
    accuracy: tuple[float, float]  # baseline, candidate (0..1, on the paired examples)
    cost_per_correct: tuple[float | None, float | None]
    accuracy_delta_pp: bootstrap.Interval
    cost_delta_pct: bootstrap.Interval | None
    cost_per_correct_delta_pct: float | None
    seed: int
    resamples: int
    notes: tuple[str, ...] = field(default=())

    @property
    def verdict(self) -> str:
        return verdict_line(self)

    def to_dict(self) -> dict[str, Any]:
        def side(s: EvalSide, i: int) -> dict[str, Any]:
            return {"run_id": s.run_id, "label": s.label, "dataset": s.dataset,
                    "digest": s.digest, EvalMetric.ACCURACY: self.accuracy[i],
                    EvalMetric.COST_PER_CORRECT_USD: self.cost_per_correct[i]}

        return {
            "baseline": side(self.baseline, 0), "candidate": side(self.candidate, 1),
            "paired_examples": self.paired,
            "accuracy_delta_pp": self.accuracy_delta_pp.as_dict(),
            "cost_delta_pct": self.cost_delta_pct.as_dict() if self.cost_delta_pct else None,
            "cost_per_correct_delta_pct": self.cost_per_correct_delta_pct,
            "confidence": bootstrap.CONFIDENCE, "seed": self.seed, "resamples": self.resamples,
            "verdict": self.verdict, "notes": list(self.notes),
        }


def verdict_line(c: QualityComparison) -> str:
    """``v2.0.0: -53% cost [-60%, -45%], accuracy -1.2 pp [-5.0, +2.5]: no significant ...``"""
    acc = c.accuracy_delta_pp
    parts = [f"{c.candidate.label}:"]
    if c.cost_delta_pct is not None:
        cost = c.cost_delta_pct
        parts.append(f"{cost.estimate:+.0f}% cost [{cost.low:+.0f}%, {cost.high:+.0f}%],")
    parts.append(f"accuracy {acc.estimate:+.1f} pp [{acc.low:+.1f}, {acc.high:+.1f}]:")
    if acc.low > 0:
        parts.append("significantly more accurate")
    elif acc.high < 0:
        parts.append("significantly less accurate")
    else:
        parts.append("no significant quality change")
    return " ".join(parts) + f" (95% CI, {c.paired} paired examples)"


def is_evaluation_run(run: Any) -> bool:
    return run.data.tags.get(Tag.KIND) == Kind.EVALUATION


def find_evaluation_run(client: Any, experiment_ids: list[str], spec: str) -> Any | None:
    """The evaluation run a side names: a run id, or the latest run matching a filter."""
    ids = parse_run_ids(spec)
    if ids is not None:
        if len(ids) != 1:
            return None
        try:
            run = client.get_run(ids[0])
        except Exception:
            return None
        return run if is_evaluation_run(run) else None
    kind = f"tags.`{Tag.KIND}` = '{Kind.EVALUATION}'"
    try:
        runs = client.search_runs(experiment_ids, filter_string=f"{spec} and {kind}",
                                  order_by=["attributes.start_time DESC"], max_results=1)
    except Exception:
        return None
    return runs[0] if runs else None


def _load_side(client: Any, run: Any) -> EvalSide:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run.info.run_id, Artifact.EVAL_RESULTS, tmp)
            table = json.loads(Path(path).read_text(encoding="utf-8"))
        except Exception as exc:
            raise ReportError(f"evaluation run {run.info.run_id} has no readable "
                              f"{Artifact.EVAL_RESULTS}: {exc}") from None
    columns = table.get("columns") or []
    rows = {str(r["id"]): r for r in (dict(zip(columns, d, strict=False))
                                      for d in table.get("data") or []) if "id" in r}
    tags = run.data.tags
    version = tags.get(Tag.WORKFLOW_VERSION)
    label = f"v{version}" if version and version[0].isdigit() else (
        version or run.info.run_name or run.info.run_id)
    return EvalSide(run.info.run_id, label, tags.get(EvalTag.EVAL_DATASET, ""),
                    tags.get(EvalTag.EVAL_DATASET_DIGEST, ""), rows)


def _cost(row: dict[str, Any]) -> float | None:
    value = row.get("cost_usd")
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value)


def _per_correct(costs: list[float], correct: list[float]) -> float | None:
    return sum(costs) / sum(correct) if sum(correct) else None


def compare_sides(baseline: EvalSide, candidate: EvalSide, *,
                  seed: int = bootstrap.DEFAULT_SEED,
                  resamples: int = bootstrap.DEFAULT_RESAMPLES) -> QualityComparison:
    notes: list[str] = []
    if baseline.digest and candidate.digest and baseline.digest != candidate.digest:
        notes.append(f"the datasets differ ({baseline.dataset}@{baseline.digest} vs "
                     f"{candidate.dataset}@{candidate.digest}); only shared ids are paired")
    ids = [i for i in baseline.rows if i in candidate.rows]
    unpaired = len(set(baseline.rows) ^ set(candidate.rows))
    if unpaired:
        notes.append(f"{unpaired} example(s) appear on one side only and are left out")
    if not ids:
        raise ReportError("the two evaluation runs share no example ids")
    b_ok = [float(bool(baseline.rows[i].get("correct"))) for i in ids]
    c_ok = [float(bool(candidate.rows[i].get("correct"))) for i in ids]
    acc = bootstrap.accuracy_delta_pp(b_ok, c_ok, seed=seed, resamples=resamples)
    b_cost = [_cost(baseline.rows[i]) for i in ids]
    c_cost = [_cost(candidate.rows[i]) for i in ids]
    cost = cpc_delta = None
    cpc: tuple[float | None, float | None] = (None, None)
    if all(v is not None for v in (*b_cost, *c_cost)):
        bc = [v for v in b_cost if v is not None]
        cc = [v for v in c_cost if v is not None]
        cpc = (_per_correct(bc, b_ok), _per_correct(cc, c_ok))
        if cpc[0] and cpc[1] is not None:
            cpc_delta = (cpc[1] / cpc[0] - 1) * 100
        if sum(bc) > 0:
            cost = bootstrap.cost_delta_pct(bc, cc, seed=seed, resamples=resamples)
    else:
        notes.append("some examples have no cost (unpriced model or no run): cost deltas "
                     "left out")
    return QualityComparison(
        baseline=baseline, candidate=candidate, paired=len(ids),
        accuracy=(sum(b_ok) / len(ids), sum(c_ok) / len(ids)), cost_per_correct=cpc,
        accuracy_delta_pp=acc, cost_delta_pct=cost, cost_per_correct_delta_pct=cpc_delta,
        seed=seed, resamples=resamples, notes=tuple(notes))


def compare_evaluations(
    baseline: str, candidate: str, *, tracking_uri: str | None = None,
    experiments: Sequence[str] | None = None, seed: int = bootstrap.DEFAULT_SEED,
    resamples: int = bootstrap.DEFAULT_RESAMPLES,
) -> QualityComparison | None:
    """Quality comparison when both sides name an evaluation run; None otherwise."""
    client, uri = open_client(tracking_uri)
    _, experiment_ids = select_experiments(client, uri, experiments)
    runs = [find_evaluation_run(client, experiment_ids, spec) for spec in (baseline, candidate)]
    if runs[0] is None or runs[1] is None:
        return None
    return compare_sides(_load_side(client, runs[0]), _load_side(client, runs[1]),
                         seed=seed, resamples=resamples)


def examples_filter(eval_run_id: str) -> str:
    """The filter over an evaluation's example runs (for the cost and per-node compare)."""
    return f"tags.{EvalTag.EVAL_RUN_ID} = '{eval_run_id}'"


def quality_table(c: QualityComparison) -> Table:
    def usd(v: float | None) -> str:
        return "-" if v is None else f"${v:.6f}"

    def ci(i: bootstrap.Interval | None, unit: str) -> str:
        return "-" if i is None else f"{i.estimate:+.1f}{unit} [{i.low:+.1f}, {i.high:+.1f}]"

    table = Table(title=f"Quality: {printable(c.baseline.label)} -> "
                        f"{printable(c.candidate.label)} on {printable(c.baseline.dataset)} "
                        f"({c.paired} paired examples)")
    for name in ("measure", "baseline", "candidate", "delta [95% CI]"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    table.add_row(EvalMetric.ACCURACY, f"{c.accuracy[0]:.1%}", f"{c.accuracy[1]:.1%}",
                  ci(c.accuracy_delta_pp, " pp"))
    table.add_row(EvalMetric.COST_PER_CORRECT_USD, usd(c.cost_per_correct[0]),
                  usd(c.cost_per_correct[1]),
                  "-" if c.cost_per_correct_delta_pct is None
                  else f"{c.cost_per_correct_delta_pct:+.1f}%")
    table.add_row("total cost (paired)", "", "", ci(c.cost_delta_pct, "%"))
    return table


def print_quality(c: QualityComparison, console: Console) -> None:
    for note in c.notes:
        console.print(printable(note), markup=False, highlight=False)
    console.print(quality_table(c))
    console.print(printable(c.verdict), markup=False, highlight=False, soft_wrap=True)
