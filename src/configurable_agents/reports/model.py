"""What a report is made of: the rows read from MLflow, and how a group of rows is measured.

Pure data and arithmetic, no I/O: ``store`` fills :class:`RunRow` s, ``reporting``
groups them into a :class:`CostReport` or :class:`Comparison`, ``render`` draws them.

A run ends in one of four outcomes (plus ``running``): *succeeded* and *failed* make the
success rate; *killed* (MLflow status KILLED: the client stopped reading a stream, a task was
cancelled, or ``cleanup --stale`` closed a run whose process died) and *interrupted* (a
LangGraph interrupt paused for a human; MLflow FINISHED with tag ``status=INTERRUPTED``) are
neither, so they are counted on their own. Every run's tokens and cost count in the totals.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from configurable_agents.names import NODE_RUN_PREFIX, Param, Status, Tag
from configurable_agents.reports.scores import ScoreDelta, ScoreStat, summarize_scores

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MISSING = "(none)"
GROUP_KEYS: tuple[str, ...] = (
    "workflow", "workflow_version", "model", "node", "user", "team", "tenant", "session", "day",
    "status",
)
NODE_KEYS = frozenset({"model", "node"})
_ATTRIBUTION_TAGS = {"user": Tag.USER_ID, "team": Tag.TEAM, "tenant": Tag.TENANT_ID}
# A conversation: LangGraph's thread_id, else a session_id in the invocation metadata.
_SESSION_TAGS = (Tag.THREAD_ID, Tag.SESSION_ID)

Outcome = Literal["succeeded", "failed", "killed", "interrupted", "running"]
_OPEN_STATUSES = frozenset({Status.RUNNING, "SCHEDULED"})


def outcome_of(
    run_status: str, status_tag: str | None, status_metric: float | None
) -> tuple[str, Outcome]:
    """(status to show, outcome) of a run from MLflow's status, our status tag and metric.

    MLflow's KILLED wins over a tag written earlier (a stale run closed by cleanup still has
    the tag it started with); INTERRUPTED is only in the tag (MLflow says FINISHED); for the
    rest the ``status`` metric (1 success, 0 failure) decides when present, else the status.
    """
    if run_status in _OPEN_STATUSES:
        return run_status, "running"
    if Status.KILLED in (run_status, status_tag):
        return Status.KILLED, "killed"
    if status_tag == Status.INTERRUPTED:
        return Status.INTERRUPTED, "interrupted"
    if status_metric is not None:
        ok = status_metric >= 1
    else:
        ok = (status_tag or run_status) == Status.FINISHED
    return (Status.FINISHED, "succeeded") if ok else (Status.FAILED, "failed")


class ReportError(Exception):
    """A user-facing, one-line problem: bad filter, unknown experiment, unreachable store."""


class ReportOptionError(ReportError):
    """A value outside what a report can use (a time out of range): a usage error, exit 2."""


@dataclass(slots=True)
class RunRow:
    """The few facts a report needs from one run (workflow or node)."""

    run_id: str
    kind: Literal["workflow", "node"]
    start_ms: int
    status: str
    outcome: Outcome
    input_tokens: float
    output_tokens: float
    cost_usd: float
    priced: bool
    duration_s: float | None
    retries: float
    tags: Mapping[str, str]
    params: Mapping[str, str]
    run_name: str
    parent_id: str | None = None
    workflow: RunRow | None = None  # for node rows: the workflow run they belong to
    # A rollup row stands for ``count`` sampled-out workflows (or node runs): its tokens
    # and cost are their sums, ``duration_s`` their mean (see reports.rollups).
    count: int = 1
    # For a rollup row: its node-level rows (read with it; no second search needed).
    rollup_nodes: tuple[RunRow, ...] = field(default=(), repr=False, compare=False)
    # Feedback and online scores of a workflow run: ``{metric: (mean, count)}`` (reports.scores).
    scores: Mapping[str, tuple[float, int]] = field(default_factory=dict, repr=False)

    @property
    def day(self) -> str:
        return datetime.fromtimestamp(self.start_ms / 1000, UTC).date().isoformat()

    @property
    def succeeded(self) -> bool | None:
        """True / False for runs that succeeded / failed; None for any other outcome."""
        return {"succeeded": True, "failed": False}.get(self.outcome)


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Measures of one group of runs (or of all runs: the totals)."""

    key: tuple[str, ...]
    runs: int
    completed: int  # succeeded + failed: the success rate's denominator
    succeeded: int
    failed: int
    killed: int  # stopped early (stream left, task cancelled) or closed by cleanup --stale
    interrupted: int  # paused for a human (LangGraph interrupt)
    success_rate: float | None
    input_tokens: int
    output_tokens: int
    input_tokens_per_run: float | None
    output_tokens_per_run: float | None
    cost_usd: float
    cost_per_run: float | None
    duration_mean_s: float | None
    duration_p95_s: float | None
    retries: int
    unpriced_runs: int
    # Feedback and online-evaluation scores (mean, count), shown beside the measures.
    scores: tuple[ScoreStat, ...] = ()

    def measures(self) -> dict[str, Any]:
        """Every measure by name (the key and the scores excluded)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_MEASURES}

    def scores_dict(self) -> dict[str, dict[str, float | int]]:
        return {s.name: s.to_dict() for s in self.scores}


_NOT_MEASURES = frozenset({"key", "scores"})
MEASURES: tuple[str, ...] = tuple(f.name for f in fields(GroupStats) if f.name not in _NOT_MEASURES)


@dataclass(frozen=True, slots=True)
class ReportScope:
    """What was read: shown in titles and JSON so a report explains itself."""

    tracking_uri: str  # redacted
    experiments: tuple[str, ...]
    since: datetime | None
    until: datetime | None
    filter_string: str | None
    read_via: str = "search_runs"  # or "database": see report_store.open_reader

    def to_dict(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.tracking_uri,
            "experiments": list(self.experiments),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "filter": self.filter_string,
            "read_via": self.read_via,
        }


@dataclass(frozen=True)
class CostReport:
    """Per-group measures, sorted by cost (highest first), plus totals over every row."""

    group_by: tuple[str, ...]
    level: Literal["workflow", "node"]
    groups: tuple[GroupStats, ...]
    totals: GroupStats
    total_groups: int  # before --top
    scope: ReportScope
    rows: tuple[RunRow, ...] = field(default=(), repr=False, compare=False)

    @property
    def empty(self) -> bool:
        return self.totals.runs == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_by": list(self.group_by),
            "level": self.level,
            "scope": self.scope.to_dict(),
            "total_groups": self.total_groups,
            "groups": [{**_group_dict(self.group_by, g), "scores": g.scores_dict()}
                       for g in self.groups],
            "totals": {**self.totals.measures(), "scores": self.totals.scores_dict()},
        }

    def to_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            [_group_dict(self.group_by, g) for g in self.groups],
            columns=[*self.group_by, *MEASURES],
        )

    def cost_per_day(self, by: str | None = None) -> dict[str, dict[str, float]]:
        """``{day: {value of `by`: cost}}`` over all rows (``by`` defaults to group_by[0])."""
        key = by or self.group_by[0]
        out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for row in self.rows:
            out[row.day][group_value(row, key)] += row.cost_usd
        return {day: dict(values) for day, values in sorted(out.items())}


@dataclass(frozen=True, slots=True)
class Delta:
    """One measure on both sides: candidate minus baseline, and relative to baseline."""

    measure: str
    baseline: float | None
    candidate: float | None
    absolute: float | None
    relative: float | None


@dataclass(frozen=True, slots=True)
class NodeComparison:
    node: str
    baseline: GroupStats | None
    candidate: GroupStats | None
    deltas: tuple[Delta, ...]


@dataclass(frozen=True)
class Comparison:
    """Baseline vs candidate: overall deltas and per-node deltas."""

    baseline_spec: str
    candidate_spec: str
    baseline: GroupStats | None  # None when the side matched no runs
    candidate: GroupStats | None
    deltas: tuple[Delta, ...]
    nodes: tuple[NodeComparison, ...]
    scope: ReportScope
    notes: tuple[str, ...] = ()  # e.g. run ids that were not found
    # Feedback and online scores with bootstrap intervals (reports.score_compare).
    scores: tuple[ScoreDelta, ...] = ()

    @property
    def empty_sides(self) -> list[str]:
        return [side for side, s in (("baseline", self.baseline), ("candidate", self.candidate))
                if s is None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": {"spec": self.baseline_spec,
                         "stats": self.baseline.measures() if self.baseline else None},
            "candidate": {"spec": self.candidate_spec,
                          "stats": self.candidate.measures() if self.candidate else None},
            "deltas": [asdict(d) for d in self.deltas],
            "nodes": [{"node": n.node, "deltas": [asdict(d) for d in n.deltas]}
                      for n in self.nodes],
            "scores": [s.to_dict() for s in self.scores],
            "scope": self.scope.to_dict(),
            "notes": list(self.notes),
        }

    def to_dataframe(self) -> pd.DataFrame:
        """One row per (scope, measure); scope is ``overall`` or ``node:<id>``."""
        import pandas as pd

        records = [{"scope": "overall", **asdict(d)} for d in self.deltas]
        for n in self.nodes:
            records.extend({"scope": f"node:{n.node}", **asdict(d)} for d in n.deltas)
        return pd.DataFrame(
            records,
            columns=["scope", "measure", "baseline", "candidate", "absolute", "relative"],
        )


def _group_dict(group_by: Sequence[str], stats: GroupStats) -> dict[str, Any]:
    return {**dict(zip(group_by, stats.key, strict=True)), **stats.measures()}


def group_value(row: RunRow, key: str) -> str:
    """The value of a group-by key for a row; attribution comes from the workflow run."""
    root = row.workflow or row
    value: str | None
    if key == "workflow":
        value = root.tags.get(Tag.WORKFLOW_NAME) or root.params.get(Param.WORKFLOW_NAME) or (
            root.run_name)
    elif key == "workflow_version":
        value = root.tags.get(Tag.WORKFLOW_VERSION) or root.params.get(Param.WORKFLOW_VERSION)
    elif key == "node":
        value = row.params.get(Param.NODE_ID) or (
            row.run_name.removeprefix(NODE_RUN_PREFIX) if row.kind == "node" else None)
    elif key == "model":
        value = row.params.get(Param.NODE_MODEL) if row.kind == "node" else None
    elif key in _ATTRIBUTION_TAGS:
        value = root.tags.get(_ATTRIBUTION_TAGS[key])
    elif key == "session":
        value = next((v for t in _SESSION_TAGS if (v := root.tags.get(t))), None)
    elif key == "day":
        value = row.day
    elif key == "status":
        value = row.status
    elif key.startswith("tag:"):
        name = key[4:]
        value = row.tags.get(name) or root.tags.get(name)
    elif key.startswith("param:"):
        name = key[6:]
        value = row.params.get(name) or root.params.get(name)
    else:
        raise ReportError(f"unknown group-by key {key!r}")
    return value or MISSING


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(rows: Sequence[RunRow], key: tuple[str, ...] = ()) -> GroupStats:
    """Measures over ``rows``: sums, outcome counts, success rate, mean and p95 duration.

    The success rate is succeeded / (succeeded + failed): killed, interrupted and running
    runs are counted apart and left out of it; their tokens and cost are in the sums.
    """
    runs = sum(r.count for r in rows)
    outcomes: Counter[str] = Counter()
    for r in rows:
        outcomes[r.outcome] += r.count
    succeeded, failed = outcomes["succeeded"], outcomes["failed"]
    completed = succeeded + failed
    # p95 from the runs written in full; the mean also counts the rollups' workflows.
    durations = [r.duration_s for r in rows if r.duration_s is not None and r.count == 1]
    timed = [(r.duration_s, r.count) for r in rows if r.duration_s is not None]
    timed_runs = sum(n for _, n in timed)
    input_tokens = round(sum(r.input_tokens for r in rows))
    output_tokens = round(sum(r.output_tokens for r in rows))
    cost = sum(r.cost_usd for r in rows)
    return GroupStats(
        key=key,
        runs=runs,
        completed=completed,
        succeeded=succeeded,
        failed=failed,
        killed=outcomes["killed"],
        interrupted=outcomes["interrupted"],
        success_rate=succeeded / completed if completed else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        input_tokens_per_run=input_tokens / runs if runs else None,
        output_tokens_per_run=output_tokens / runs if runs else None,
        cost_usd=cost,
        cost_per_run=cost / runs if runs else None,
        duration_mean_s=sum(d * n for d, n in timed) / timed_runs if timed_runs else None,
        duration_p95_s=percentile(durations, 95),
        retries=round(sum(r.retries for r in rows)),
        unpriced_runs=sum(r.count for r in rows if not r.priced),
        scores=summarize_scores(r.scores for r in rows if r.kind == "workflow"),
    )


def group_rows(rows: Sequence[RunRow], group_by: Sequence[str]) -> list[GroupStats]:
    """One GroupStats per distinct key, highest cost first (ties: key order)."""
    buckets: dict[tuple[str, ...], list[RunRow]] = defaultdict(list)
    for row in rows:
        buckets[tuple(group_value(row, k) for k in group_by)].append(row)
    stats = [summarize(members, key) for key, members in buckets.items()]
    return sorted(stats, key=lambda s: (-s.cost_usd, s.key))
