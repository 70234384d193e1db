"""Cost reports and run comparison, read back from MLflow: the public API.

:func:`cost_report` groups workflow runs (or, for ``node``/``model`` keys, their nested node
runs) and measures each group; :func:`compare_runs` sets a baseline against a candidate,
overall and per node; :func:`plot_cost_per_day` draws a report. Reading lives in
``store`` (``MlflowClient.search_runs``, or ``db`` straight from a database store), the data
and arithmetic in ``model``, rendering in ``render``.

Results are plain frozen dataclasses (:class:`CostReport`, :class:`Comparison`) with
``to_dict()`` and ``to_dataframe()``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

from configurable_agents.config.schema import redact_uri
from configurable_agents.reports.bootstrap import DEFAULT_SEED
from configurable_agents.reports.model import (
    GROUP_KEYS,
    MEASURES,
    NODE_KEYS,
    Comparison,
    CostReport,
    Delta,
    GroupStats,
    NodeComparison,
    ReportError,
    ReportOptionError,
    ReportScope,
    RunRow,
    group_rows,
    group_value,
    percentile,
    summarize,
)
from configurable_agents.reports.score_compare import compare_scores
from configurable_agents.reports.store import (
    PAGE_SIZE,
    ProgressFn,
    RunReader,
    load_node_rows,
    load_workflow_rows,
    open_client,
    open_reader,
    resolve_tracking_uri,
    select_experiments,
)

DEFAULT_EXPERIMENT = "configurable_agents"
_RUN_IDS = re.compile(r"[0-9a-f]{32}(\s*,\s*[0-9a-f]{32})*,?")
_RELATIVE = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Counts the success rate already sums up; killed and interrupted are compared on their own.
_NOT_COMPARED = frozenset({"completed", "succeeded", "failed"})


def parse_time_bound(text: str, *, end: bool = False, now: datetime | None = None) -> datetime:
    """``7d`` / ``12h`` / ``30m`` / ``2w`` (ago), ``now``, ``today``, an ISO date or datetime.

    Dates and naive datetimes are UTC. A bare date used as an ``end`` bound includes that whole
    day (``--until 2026-11-01`` stops at 2026-11-02T00:00Z), because that is what people mean.
    """
    now = now or datetime.now(UTC)
    value = text.strip().lower()
    if value == "now":
        return now
    if value == "today":
        start = datetime.combine(now.date(), datetime.min.time(), UTC)
        return start + timedelta(days=1) if end else start
    match = _RELATIVE.fullmatch(value)
    try:
        if match:
            return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        try:
            day = date.fromisoformat(value)
        except ValueError:
            pass
        else:
            start = datetime.combine(day, datetime.min.time(), UTC)
            return start + timedelta(days=1) if end else start
    except OverflowError:  # timedelta > 999,999,999 days, or a date past year 1 / 9999
        raise ReportOptionError(
            f"time {text!r} is out of range: the earliest is 0001-01-01, the latest 9999-12-30"
        ) from None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportOptionError(
            f"cannot read time {text!r}; use e.g. 7d, 12h, 30m, 2w, today, 2026-11-01 "
            "or 2026-11-01T12:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def validate_group_by(keys: Sequence[str]) -> tuple[str, ...]:
    """Known keys, plus ``tag:<name>`` / ``param:<name>`` for anything else."""
    out: list[str] = []
    for raw in keys:
        for key in (k.strip() for k in raw.split(",")):
            if not key:
                continue
            prefix, _, name = key.partition(":")
            if key in GROUP_KEYS or (prefix in ("tag", "param") and name):
                out.append(key)
            else:
                raise ReportOptionError(
                    f"unknown group-by key {key!r}; use {', '.join(GROUP_KEYS)}, "
                    "tag:<name> or param:<name>"
                )
    if not out:
        raise ReportOptionError("--group-by needs at least one key")
    return tuple(dict.fromkeys(out))


def parse_run_ids(spec: str) -> list[str] | None:
    """The run ids of a comma-separated id list, or None when ``spec`` is a filter."""
    text = spec.strip().lower()
    if not _RUN_IDS.fullmatch(text):
        return None
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def cost_report(
    group_by: Sequence[str] = ("workflow",),
    *,
    tracking_uri: str | None = None,
    experiments: Sequence[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    filter_string: str | None = None,
    top: int | None = None,
    progress: ProgressFn | None = None,
    page_size: int = PAGE_SIZE,
    direct_db: bool = True,
) -> CostReport:
    """Group workflow runs (or, for ``node``/``model`` keys, node runs) and measure each group.

    ``filter_string`` is MLflow search syntax over the workflow runs (e.g.
    ``"tags.team = 'data'"``, ``"params.workflow_version = '1.0.0'"``). Unpriced runs (tag
    ``pricing=unknown``) are counted in ``unpriced_runs``; their cost is the priced part only.
    ``direct_db=False`` reads through ``MlflowClient.search_runs`` even on a database store
    (slower; the result is the same, see ``report_db``).
    Raises :class:`ReportError` for a bad filter, unknown experiment or unreachable store.
    """
    keys = validate_group_by(group_by)
    if top is not None and top < 1:
        raise ReportError("--top must be at least 1")
    since_dt = parse_time_bound(since) if isinstance(since, str) else since
    until_dt = parse_time_bound(until, end=True) if isinstance(until, str) else until
    if since_dt and until_dt and since_dt >= until_dt:
        raise ReportError(f"--since ({since_dt.isoformat()}) is not before --until "
                          f"({until_dt.isoformat()})")
    client, uri = open_client(tracking_uri)
    names, experiment_ids = select_experiments(client, uri, experiments)
    reader = open_reader(client, uri, direct_db=direct_db, page_size=page_size)
    workflows = load_workflow_rows(
        reader, experiment_ids, since=since_dt, until=until_dt,
        filter_string=filter_string, progress=progress,
    )
    level: Literal["workflow", "node"] = "node" if NODE_KEYS & set(keys) else "workflow"
    rows = workflows
    if level == "node":
        rows = load_node_rows(reader, experiment_ids, workflows, progress=progress)
    groups = group_rows(rows, keys)
    return CostReport(
        group_by=keys,
        level=level,
        groups=tuple(groups[:top] if top else groups),
        totals=summarize(rows, ("TOTAL",) * len(keys)),
        total_groups=len(groups),
        scope=ReportScope(redact_uri(uri), names, since_dt, until_dt, filter_string,
                          reader.name),
        rows=tuple(rows),
    )


def _delta(measure: str, base: GroupStats | None, cand: GroupStats | None) -> Delta:
    b = getattr(base, measure) if base else None
    c = getattr(cand, measure) if cand else None
    absolute = c - b if b is not None and c is not None else None
    relative = absolute / b if absolute is not None and b else None
    return Delta(measure, b, c, absolute, relative)


def _deltas(base: GroupStats | None, cand: GroupStats | None) -> tuple[Delta, ...]:
    return tuple(_delta(m, base, cand) for m in MEASURES if m not in _NOT_COMPARED)


def _side_rows(
    reader: RunReader,
    experiment_ids: list[str],
    spec: str,
    since: datetime | None,
    until: datetime | None,
    progress: ProgressFn | None,
    notes: list[str],
    label: str,
) -> list[RunRow]:
    ids = parse_run_ids(spec)
    if ids is None:
        return load_workflow_rows(reader, experiment_ids, since=since, until=until,
                                  filter_string=spec, progress=progress)
    rows: list[RunRow] = []
    for chunk in range(0, len(ids), 100):
        part = ids[chunk:chunk + 100]
        listed = ", ".join(f"'{i}'" for i in part)
        rows.extend(load_workflow_rows(reader, experiment_ids,
                                       filter_string=f"attributes.run_id IN ({listed})",
                                       progress=progress))
    missing = sorted(set(ids) - {r.run_id for r in rows})
    if missing:
        notes.append(f"{label}: {len(missing)} of {len(ids)} run ids are not workflow runs in "
                     f"the selected experiments: {', '.join(missing)}")
    return rows


def compare_runs(
    baseline: str,
    candidate: str,
    *,
    tracking_uri: str | None = None,
    experiments: Sequence[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    progress: ProgressFn | None = None,
    direct_db: bool = True,
    seed: int = DEFAULT_SEED,
) -> Comparison:
    """Compare two sets of workflow runs, overall and per node.

    Each side is an MLflow filter over workflow runs (``"params.workflow_version = '1.0.0'"``)
    or a comma-separated list of run ids. A side that matches nothing yields ``None`` stats
    (see :attr:`Comparison.empty_sides`). Feedback and online scores get bootstrap
    intervals (``seed``), paired by example id on evaluation example runs.
    """
    since_dt = parse_time_bound(since) if isinstance(since, str) else since
    until_dt = parse_time_bound(until, end=True) if isinstance(until, str) else until
    client, uri = open_client(tracking_uri)
    names, experiment_ids = select_experiments(client, uri, experiments)
    reader = open_reader(client, uri, direct_db=direct_db)
    notes: list[str] = []
    sides = [
        _side_rows(reader, experiment_ids, spec, since_dt, until_dt, progress, notes, label)
        for spec, label in ((baseline, "baseline"), (candidate, "candidate"))
    ]
    nodes = load_node_rows(reader, experiment_ids, [*sides[0], *sides[1]],
                           progress=progress)
    base_ids = {r.run_id for r in sides[0]}
    per_node: dict[str, list[list[RunRow]]] = defaultdict(lambda: [[], []])
    for node in nodes:
        assert node.workflow is not None
        per_node[group_value(node, "node")][0 if node.workflow.run_id in base_ids else 1].append(
            node)
    stats = [summarize(rows, (label,)) if rows else None
             for rows, label in zip(sides, ("baseline", "candidate"), strict=True)]
    node_comparisons = []
    for node_id in sorted(per_node):
        b_rows, c_rows = per_node[node_id]
        b = summarize(b_rows, (node_id,)) if b_rows else None
        c = summarize(c_rows, (node_id,)) if c_rows else None
        node_comparisons.append(NodeComparison(node_id, b, c, _deltas(b, c)))
    return Comparison(
        baseline_spec=baseline,
        candidate_spec=candidate,
        baseline=stats[0],
        candidate=stats[1],
        deltas=_deltas(stats[0], stats[1]),
        nodes=tuple(node_comparisons),
        scope=ReportScope(redact_uri(uri), names, since_dt, until_dt, None, reader.name),
        notes=tuple(notes),
        scores=compare_scores(sides[0], sides[1], seed=seed),
    )


def plot_cost_per_day(report: CostReport, path: str | Path, by: str | None = None) -> Path:
    """PNG of cost per day stacked by ``by`` (default: the first group-by key).

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch), so it is safe
    in servers and notebooks alike. At most 10 series; the rest are summed as ``other``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    key = by or report.group_by[0]
    per_day = report.cost_per_day(key)
    if not per_day:
        raise ReportError("nothing to plot: no runs matched")
    first, last = date.fromisoformat(min(per_day)), date.fromisoformat(max(per_day))
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    totals: dict[str, float] = defaultdict(float)
    for values in per_day.values():
        for value, cost in values.items():
            totals[value] += cost
    ranked = sorted(totals, key=lambda v: (-totals[v], v))
    series, rest = ranked[:10], set(ranked[10:])
    labels = series + (["other"] if rest else [])
    figure = Figure(figsize=(max(6.0, min(0.35 * len(days) + 3, 20.0)), 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bottom = [0.0] * len(days)
    for label in labels:
        heights = [
            sum(c for v, c in per_day.get(d, {}).items() if v in rest) if label == "other"
            and rest else per_day.get(d, {}).get(label, 0.0)
            for d in days
        ]
        axes.bar(range(len(days)), heights, bottom=bottom, label=label)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    step = max(1, len(days) // 15)
    axes.set_xticks(range(0, len(days), step), days[::step], rotation=45, ha="right")
    axes.set_ylabel("cost (USD)")
    axes.set_title(f"Cost per day by {key}")
    axes.legend(fontsize="small", loc="upper left")
    figure.tight_layout()
    out = Path(path)
    figure.savefig(out, format="png")
    return out


__all__ = [
    "DEFAULT_EXPERIMENT",
    "GROUP_KEYS",
    "MEASURES",
    "PAGE_SIZE",
    "Comparison",
    "CostReport",
    "Delta",
    "GroupStats",
    "NodeComparison",
    "ProgressFn",
    "ReportError",
    "ReportOptionError",
    "ReportScope",
    "RunRow",
    "compare_runs",
    "cost_report",
    "group_rows",
    "group_value",
    "parse_run_ids",
    "parse_time_bound",
    "percentile",
    "plot_cost_per_day",
    "resolve_tracking_uri",
    "summarize",
    "validate_group_by",
]
