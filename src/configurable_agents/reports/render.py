"""Render cost reports and comparisons: rich tables for people, JSON / CSV for tools.

JSON and CSV carry raw numbers (no rounding, no currency signs) so they parse back exactly;
tables round for reading.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from configurable_agents.reports.model import (
    MEASURES,
    Comparison,
    CostReport,
    Delta,
    GroupStats,
    ReportScope,
)

_Fmt = Callable[[Any], str]


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _usd(value: Any) -> str:
    return "-" if value is None else f"${value:,.4f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _sec(value: Any) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _dec(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f}"


# measure -> (column title, formatter); the order is the table's column order.
COLUMNS: dict[str, tuple[str, _Fmt]] = {
    "runs": ("Runs", _num),
    "success_rate": ("Success", _pct),
    "input_tokens": ("In tokens", _num),
    "output_tokens": ("Out tokens", _num),
    "cost_usd": ("Cost", _usd),
    "cost_per_run": ("Cost/run", _usd),
    "duration_mean_s": ("Mean s", _sec),
    "duration_p95_s": ("p95 s", _sec),
    "retries": ("Retries", _num),
    "unpriced_runs": ("Unpriced", _num),
}
_COMPARE_FORMAT: dict[str, _Fmt] = {
    **{m: fmt for m, (_, fmt) in COLUMNS.items()},
    "completed": _num,
    "succeeded": _num,
    "input_tokens_per_run": _dec,
    "output_tokens_per_run": _dec,
}
_NODE_MEASURES = ("runs", "success_rate", "input_tokens_per_run", "output_tokens_per_run",
                  "cost_per_run", "duration_mean_s", "duration_p95_s", "retries")


def _scope_line(scope: ReportScope) -> str:
    window = ""
    if scope.since or scope.until:
        since = scope.since.strftime("%Y-%m-%d %H:%M") if scope.since else "start"
        until = scope.until.strftime("%Y-%m-%d %H:%M") if scope.until else "now"
        window = f", {since} .. {until} UTC"
        window = window.replace(" 00:00", "")
    where = f", where {scope.filter_string}" if scope.filter_string else ""
    return f"{scope.tracking_uri}, experiment {', '.join(scope.experiments)}{window}{where}"


def no_runs_line(scope: ReportScope) -> str:
    return f"No runs matched ({_scope_line(scope)})."


# --------------------------------------------------------------------------- cost report


def cost_table(report: CostReport) -> Table:
    unit = "node runs" if report.level == "node" else "workflow runs"
    shown = (f"top {len(report.groups)} of {report.total_groups} groups"
             if len(report.groups) < report.total_groups else f"{report.total_groups} groups")
    table = Table(
        title=f"Cost by {', '.join(report.group_by)}: {report.totals.runs:,} {unit}, {shown}",
        title_justify="left",
    )
    for key in report.group_by:
        table.add_column(key, no_wrap=True)
    for title, _ in COLUMNS.values():
        table.add_column(title, justify="right", no_wrap=True)
    for group in report.groups:
        table.add_row(*group.key, *_cells(group))
    table.add_section()
    table.add_row("TOTAL", *[""] * (len(report.group_by) - 1), *_cells(report.totals),
                  style="bold")
    return table


def _cells(stats: GroupStats) -> list[str]:
    return [fmt(getattr(stats, measure)) for measure, (_, fmt) in COLUMNS.items()]


def unpriced_note(report: CostReport) -> str | None:
    count = report.totals.unpriced_runs
    if not count:
        return None
    return (f"{count:,} run(s) include calls with no known price (tag pricing=unknown): "
            "their cost counts only the priced calls.")


def print_cost_report(report: CostReport, console: Console) -> None:
    if report.empty:
        console.print(no_runs_line(report.scope), highlight=False)
        return
    console.print(cost_table(report))
    console.print(_scope_line(report.scope), highlight=False, soft_wrap=True)
    note = unpriced_note(report)
    if note:
        console.print(note, highlight=False)


def cost_report_json(report: CostReport) -> str:
    return json.dumps(report.to_dict(), indent=2)


def cost_report_csv(report: CostReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*report.group_by, *MEASURES])
    for group in report.groups:
        measures = group.measures()
        writer.writerow([*group.key, *("" if measures[m] is None else measures[m]
                                       for m in MEASURES)])
    return buffer.getvalue()


# --------------------------------------------------------------------------- comparison


def _rel(delta: Delta) -> str:
    return "-" if delta.relative is None else f"{delta.relative * 100:+.1f}%"


def _abs(delta: Delta) -> str:
    if delta.absolute is None:
        return "-"
    text = _COMPARE_FORMAT[delta.measure](abs(delta.absolute))
    if delta.measure == "success_rate":
        text = f"{abs(delta.absolute) * 100:.1f} pp"
    sign = "-" if delta.absolute < 0 else "+"
    return text if text == "-" else f"{sign}{text}"


def comparison_tables(comparison: Comparison) -> list[Table]:
    overall = Table(title="Baseline vs candidate", title_justify="left")
    for title in ("Measure", "Baseline", "Candidate", "Delta", "Delta %"):
        overall.add_column(title, justify="left" if title == "Measure" else "right",
                           no_wrap=True)
    for delta in comparison.deltas:
        fmt = _COMPARE_FORMAT[delta.measure]
        overall.add_row(delta.measure, fmt(delta.baseline), fmt(delta.candidate),
                        _abs(delta), _rel(delta))
    tables = [overall]
    if comparison.nodes:
        per_node = Table(title="Per node", title_justify="left")
        for title in ("Node", "Measure", "Baseline", "Candidate", "Delta", "Delta %"):
            per_node.add_column(title, justify="left" if title in ("Node", "Measure")
                                else "right", no_wrap=True)
        for node in comparison.nodes:
            wanted = [d for d in node.deltas if d.measure in _NODE_MEASURES]
            for i, delta in enumerate(wanted):
                fmt = _COMPARE_FORMAT[delta.measure]
                per_node.add_row(node.node if i == 0 else "", delta.measure,
                                 fmt(delta.baseline), fmt(delta.candidate), _abs(delta),
                                 _rel(delta), end_section=i == len(wanted) - 1)
        tables.append(per_node)
    return tables


def empty_side_lines(comparison: Comparison) -> list[str]:
    specs = {"baseline": comparison.baseline_spec, "candidate": comparison.candidate_spec}
    return [f"The {side} matched no workflow runs ({specs[side]}); nothing to compare it with."
            for side in comparison.empty_sides]


def print_comparison(comparison: Comparison, console: Console) -> None:
    for note in comparison.notes:
        console.print(note, highlight=False)
    for line in empty_side_lines(comparison):
        console.print(line, highlight=False)
    if len(comparison.empty_sides) == 2:
        return
    for table in comparison_tables(comparison):
        console.print(table)
    console.print(_scope_line(comparison.scope), highlight=False, soft_wrap=True)


def comparison_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2)


def comparison_csv(comparison: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = ["scope", "measure", "baseline", "candidate", "absolute", "relative"]
    writer.writerow(columns)
    frame = comparison.to_dataframe()
    for record in frame.itertuples(index=False):
        writer.writerow(["" if _isnull(v) else v for v in record])
    return buffer.getvalue()


def _isnull(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
