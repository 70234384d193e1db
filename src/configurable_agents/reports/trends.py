"""Score trends: feedback and online scores per workflow, version and time bucket.

``report quality`` answers "did quality move, and in which version?": the workflow runs of
the window are read like ``report costs`` reads them (same store readers, same filters), then
each run's scores (``feedback/<name>``, ``quality/<scorer>`` with their counts, see
:mod:`configurable_agents.reports.scores`) are summed per (workflow, workflow_version,
bucket) with the same count weighting. A bucket is a UTC day or an ISO week (its Monday).
Runs without any score are counted in ``runs`` but add no trend row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from configurable_agents.reports.model import ReportScope, RunRow, group_value
from configurable_agents.reports.render import printable
from configurable_agents.reports.reporting import cost_report
from configurable_agents.reports.scores import summarize_scores

Bucket = Literal["day", "week"]
BUCKETS: tuple[Bucket, ...] = ("day", "week")


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One score of one (workflow, version, bucket): mean of its assessments and their count."""

    workflow: str
    workflow_version: str
    bucket: str
    score: str
    mean: float
    count: int
    runs: int  # workflow runs of the bucket carrying this score

    def to_dict(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "workflow_version": self.workflow_version,
                "bucket": self.bucket, "score": self.score, "mean": self.mean,
                "count": self.count, "runs": self.runs}


@dataclass(frozen=True, slots=True)
class QualityTrends:
    """The trend rows, ordered by workflow, version, score, then bucket (time)."""

    bucket: Bucket
    points: tuple[TrendPoint, ...]
    runs: int  # workflow runs read (scored or not)
    scored_runs: int
    scope: ReportScope

    @property
    def empty(self) -> bool:
        return not self.points

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "runs": self.runs, "scored_runs": self.scored_runs,
                "scope": self.scope.to_dict(),
                "trends": [p.to_dict() for p in self.points]}


def bucket_of(row: RunRow, bucket: Bucket) -> str:
    """The row's UTC day, or the Monday of its ISO week."""
    if bucket == "day":
        return row.day
    day = date.fromisoformat(row.day)
    return (day - timedelta(days=day.weekday())).isoformat()


def trends_of(rows: Sequence[RunRow], bucket: Bucket = "day") -> tuple[TrendPoint, ...]:
    """Count-weighted score means per (workflow, version, bucket) over workflow rows."""
    groups: dict[tuple[str, str, str], list[RunRow]] = defaultdict(list)
    for row in rows:
        if row.kind == "workflow" and row.scores:
            key = (group_value(row, "workflow"), group_value(row, "workflow_version"),
                   bucket_of(row, bucket))
            groups[key].append(row)
    points = []
    for (workflow, version, when), members in groups.items():
        for stat in summarize_scores(r.scores for r in members):
            runs = sum(1 for r in members if stat.name in r.scores)
            points.append(TrendPoint(workflow, version, when, stat.name, stat.mean,
                                     stat.count, runs))
    points.sort(key=lambda p: (p.workflow, p.workflow_version, p.score, p.bucket))
    return tuple(points)


def quality_trends(
    *,
    tracking_uri: str | None = None,
    experiments: Sequence[str] | None = None,
    since: datetime | str | None = "7d",
    until: datetime | str | None = None,
    filter_string: str | None = None,
    bucket: Bucket = "day",
    direct_db: bool = True,
) -> QualityTrends:
    """Score trends of the workflow runs in the window (default: the last 7 days).

    Raises :class:`~configurable_agents.reports.model.ReportError` as ``cost_report`` does
    (bad time, filter or experiment, unreachable store).
    """
    report = cost_report(("workflow",), tracking_uri=tracking_uri, experiments=experiments,
                         since=since, until=until, filter_string=filter_string,
                         direct_db=direct_db)
    workflows = [r for r in report.rows if r.kind == "workflow"]
    return QualityTrends(
        bucket=bucket, points=trends_of(workflows, bucket),
        runs=sum(r.count for r in workflows),
        scored_runs=sum(1 for r in workflows if r.scores),
        scope=report.scope)


def print_trends(trends: QualityTrends, console: Console) -> None:
    """The trend table for people: one row per score and bucket, grouped by version."""
    table = Table(title=f"Quality per {trends.bucket} ({trends.scored_runs} of "
                  f"{trends.runs} workflow runs scored)", title_justify="left")
    for name in ("workflow", "version", "score", trends.bucket):
        table.add_column(name, overflow="fold")
    for name in ("mean", "count", "runs"):
        table.add_column(name, justify="right")
    for p in trends.points:  # tag and metric values are data: never markup
        table.add_row(*(Text(printable(v)) for v in (p.workflow, p.workflow_version, p.score,
                                                     p.bucket)),
                      f"{p.mean:.3f}", str(p.count), str(p.runs))
    console.print(table)
