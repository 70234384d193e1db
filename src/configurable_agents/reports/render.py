"""Render cost reports and comparisons: rich tables for people, JSON / CSV for tools.

JSON and CSV carry raw numbers (no rounding, no currency signs) so they parse back exactly;
tables round for reading.

Group values are user data (tag and param values, experiment names, filters) and are shown
literally: table cells and titles are :class:`rich.text.Text` (never parsed as markup, so a
team called ``[/]`` is just that), control characters are shown escaped (``\x1b``, ``\n``)
so a value can neither break a row nor drive the terminal, and every line printed with
``console.print`` goes with ``markup=False``. CSV string cells that a spreadsheet would run as
a formula get a leading ``'`` (OWASP "CSV injection"); numbers are written as they are.
CSV lines end in CRLF (RFC 4180): Python's writer quotes a field only for the characters of
its line terminator, so with a bare LF a value holding CR would split a row.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from configurable_agents.reports.model import (
    MEASURES,
    Comparison,
    CostReport,
    Delta,
    GroupStats,
    ReportScope,
)
from configurable_agents.reports.scores import ScoreDelta, score_names

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
    "killed": ("Killed", _num),
    "interrupted": ("Interrupted", _num),
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
_NODE_MEASURES = ("runs", "success_rate", "killed", "interrupted", "input_tokens_per_run",
                  "output_tokens_per_run", "cost_per_run", "duration_mean_s", "duration_p95_s",
                  "retries")
# Shown only when some run in the report has that outcome (JSON and CSV always carry them).
_WHEN_NONZERO = ("killed", "interrupted")
# A spreadsheet runs a cell starting with one of these as a formula (OWASP CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def printable(value: str) -> str:
    """``value`` with control, format and line-break characters escaped (``\\x1b``, ``\\n``).

    What is left prints on one line exactly as it is stored; nothing reaches the terminal as
    an escape sequence.
    """
    if value.isprintable():
        return value
    return "".join(ascii(ch)[1:-1] if _unsafe(ch) else ch for ch in value)


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def literal(value: str) -> Text:
    """User data as a table cell or title: never markup, never a control sequence."""
    return Text(printable(value))


def csv_cell(value: Any) -> Any:
    """A CSV cell: strings that would start a formula get a leading ``'``; numbers as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _shown(measures: Iterable[str], *stats: GroupStats | None) -> list[str]:
    """The measures to show: those in _WHEN_NONZERO only when one of ``stats`` has some."""
    return [m for m in measures if m not in _WHEN_NONZERO
            or any(s is not None and getattr(s, m) for s in stats)]


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
        title=literal(f"Cost by {', '.join(report.group_by)}: {report.totals.runs:,} {unit}, "
                      f"{shown}"),
        title_justify="left",
    )
    measures = _shown(COLUMNS, report.totals)
    for key in report.group_by:
        table.add_column(literal(key), no_wrap=True)
    for measure in measures:
        table.add_column(COLUMNS[measure][0], justify="right", no_wrap=True)
    scores = score_names([report.totals.scores])
    for name in scores:
        table.add_column(literal(f"{name} (n)"), justify="right", no_wrap=True)
    for group in report.groups:
        table.add_row(*map(literal, group.key), *_cells(group, measures),
                      *_score_cells(group, scores))
    table.add_section()
    table.add_row("TOTAL", *[""] * (len(report.group_by) - 1),
                  *_cells(report.totals, measures), *_score_cells(report.totals, scores),
                  style="bold")
    return table


def _score_cells(stats: GroupStats, names: Iterable[str]) -> list[str]:
    by_name = {s.name: s for s in stats.scores}
    return [f"{by_name[n].mean:.3f} ({by_name[n].count:,})" if n in by_name else "-"
            for n in names]


def _cells(stats: GroupStats, measures: Iterable[str]) -> list[str]:
    return [COLUMNS[measure][1](getattr(stats, measure)) for measure in measures]


def unpriced_note(report: CostReport) -> str | None:
    count = report.totals.unpriced_runs
    if not count:
        return None
    return (f"{count:,} run(s) include calls with no known price (tag pricing=unknown): "
            "their cost counts only the priced calls.")


def print_cost_report(report: CostReport, console: Console) -> None:
    if report.empty:
        console.print(printable(no_runs_line(report.scope)), markup=False, highlight=False)
        return
    console.print(cost_table(report))
    console.print(printable(_scope_line(report.scope)), markup=False, highlight=False,
                  soft_wrap=True)
    for note in (unpriced_note(report), outcome_note(report)):
        if note:
            console.print(note, markup=False, highlight=False)


def outcome_note(report: CostReport) -> str | None:
    """Says why Success leaves some runs out, when it does."""
    totals = report.totals
    if not (totals.killed or totals.interrupted):
        return None
    return (f"Success counts finished and failed runs only: {totals.killed:,} killed "
            f"(stopped early or closed as stale) and {totals.interrupted:,} interrupted "
            "(paused for a human) are counted apart; their tokens and cost are in the totals.")


def cost_report_json(report: CostReport) -> str:
    return json.dumps(report.to_dict(), indent=2)


def cost_report_csv(report: CostReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    scores = score_names([report.totals.scores])
    writer.writerow([*map(csv_cell, report.group_by), *MEASURES,
                     *(csv_cell(f"{n}{suffix}") for n in scores for suffix in ("_mean", "_count"))])
    for group in report.groups:
        measures = group.measures()
        by_name = {s.name: s for s in group.scores}
        writer.writerow([*map(csv_cell, group.key),
                         *("" if measures[m] is None else measures[m] for m in MEASURES),
                         *(v for n in scores for v in (
                             (by_name[n].mean, by_name[n].count) if n in by_name else ("", "")))])
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
    sides = (comparison.baseline, comparison.candidate)
    for delta in comparison.deltas:
        if delta.measure not in _shown([delta.measure], *sides):
            continue
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
            measures = _shown(_NODE_MEASURES, node.baseline, node.candidate)
            wanted = [d for d in node.deltas if d.measure in measures]
            for i, delta in enumerate(wanted):
                fmt = _COMPARE_FORMAT[delta.measure]
                per_node.add_row(literal(node.node) if i == 0 else "", delta.measure,
                                 fmt(delta.baseline), fmt(delta.candidate), _abs(delta),
                                 _rel(delta), end_section=i == len(wanted) - 1)
        tables.append(per_node)
    return tables


def empty_side_lines(comparison: Comparison) -> list[str]:
    specs = {"baseline": comparison.baseline_spec, "candidate": comparison.candidate_spec}
    return [f"The {side} matched no workflow runs ({specs[side]}); nothing to compare it with."
            for side in comparison.empty_sides]


def print_comparison(comparison: Comparison, console: Console) -> None:
    for line in [*comparison.notes, *empty_side_lines(comparison)]:
        console.print(printable(line), markup=False, highlight=False)
    if len(comparison.empty_sides) == 2:
        return
    for table in comparison_tables(comparison):
        console.print(table)
    if comparison.scores:
        console.print(score_table(comparison.scores))
    console.print(printable(_scope_line(comparison.scope)), markup=False, highlight=False,
                  soft_wrap=True)


def comparison_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2)


def comparison_csv(comparison: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    columns = ["scope", "measure", "baseline", "candidate", "absolute", "relative"]
    writer.writerow(columns)
    frame = comparison.to_dataframe()
    for record in frame.itertuples(index=False):
        writer.writerow(["" if _isnull(v) else csv_cell(v) for v in record])
    for s in comparison.scores:  # the intervals are in the JSON
        absolute = None if s.delta is None else s.delta.estimate
        writer.writerow(["score", csv_cell(s.name), *("" if v is None else v for v in (
            s.baseline_mean, s.candidate_mean, absolute)), ""])
    return buffer.getvalue()


def _isnull(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def score_table(scores: Sequence[ScoreDelta]) -> Table:
    """Scores beside the measures: means, counts and the delta with its 95% interval."""
    table = Table(title="Feedback and online scores (95% bootstrap CI)", title_justify="left")
    for column in ("score", "baseline", "candidate", "delta [95% CI]", "paired by", "units"):
        table.add_column(column, justify="left" if column == "score" else "right")

    def mean(v: float | None, n: int) -> str:
        return "-" if v is None else f"{v:.3f} (n={n})"

    for s in scores:
        d = s.delta
        table.add_row(printable(s.name), mean(s.baseline_mean, s.baseline_count),
                      mean(s.candidate_mean, s.candidate_count),
                      "-" if d is None else f"{d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]",
                      "example id" if s.pairing == "example" else "- (runs)",
                      f"{s.units[0]} / {s.units[1]}")
    return table
