"""Cost reports and run comparison, read back from MLflow.

Everything here reads through ``MlflowClient.search_runs`` with server-side filters
(``tags.configurable_agents.kind`` and ``attributes.start_time``), paging 5,000 runs at a
time and keeping only the few numbers a report needs from each run. Node-level groupings
(``node``, ``model``) also read the nested runs of the same experiments and time window and
join them to their workflow run through the ``mlflow.parentRunId`` tag (subgraph nodes walk
up to the workflow run).

Results are plain frozen dataclasses (:class:`CostReport`, :class:`Comparison`) with
``to_dict()`` and ``to_dataframe()``; rendering lives in ``report_render``.
"""

from __future__ import annotations

import gc
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from configurable_agents.config.schema import DEFAULT_TRACKING_URI, redact_uri

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run

KIND_TAG = "configurable_agents.kind"
PARENT_TAG = "mlflow.parentRunId"
DEFAULT_EXPERIMENT = "configurable_agents"
PAGE_SIZE = 5000
MISSING = "(none)"

GROUP_KEYS: tuple[str, ...] = (
    "workflow", "workflow_version", "model", "node", "user", "team", "tenant", "day", "status",
)
NODE_KEYS = frozenset({"model", "node"})
_ATTRIBUTION_TAGS = {"user": "user_id", "team": "team", "tenant": "tenant_id"}
_RUN_IDS = re.compile(r"[0-9a-f]{32}(\s*,\s*[0-9a-f]{32})*,?")
_RELATIVE = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

ProgressFn = Callable[[str, int], None]
"""Called as ``progress(phase, runs_read_so_far)`` after each page; phase is 'workflow'/'node'."""


class ReportError(Exception):
    """A user-facing, one-line problem: bad filter, unknown experiment, unreachable store."""


# --------------------------------------------------------------------------- data


@dataclass(slots=True)
class RunRow:
    """The few facts a report needs from one run (workflow or node)."""

    run_id: str
    kind: Literal["workflow", "node"]
    start_ms: int
    status: str
    succeeded: bool | None  # None while the run is still running
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

    @property
    def day(self) -> str:
        return datetime.fromtimestamp(self.start_ms / 1000, UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Measures of one group of runs (or of all runs: the totals)."""

    key: tuple[str, ...]
    runs: int
    completed: int
    succeeded: int
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

    def measures(self) -> dict[str, Any]:
        """Every measure by name (the key excluded)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "key"}


MEASURES: tuple[str, ...] = tuple(f.name for f in fields(GroupStats) if f.name != "key")


@dataclass(frozen=True, slots=True)
class ReportScope:
    """What was read: shown in titles and JSON so a report explains itself."""

    tracking_uri: str  # redacted
    experiments: tuple[str, ...]
    since: datetime | None
    until: datetime | None
    filter_string: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.tracking_uri,
            "experiments": list(self.experiments),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "filter": self.filter_string,
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
            "groups": [_group_dict(self.group_by, g) for g in self.groups],
            "totals": self.totals.measures(),
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


# --------------------------------------------------------------------------- parsing


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
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        start = datetime.combine(day, datetime.min.time(), UTC)
        return start + timedelta(days=1) if end else start
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(
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
                raise ReportError(
                    f"unknown group-by key {key!r}; use {', '.join(GROUP_KEYS)}, "
                    "tag:<name> or param:<name>"
                )
    if not out:
        raise ReportError("--group-by needs at least one key")
    return tuple(dict.fromkeys(out))


def parse_run_ids(spec: str) -> list[str] | None:
    """The run ids of a comma-separated id list, or None when ``spec`` is a filter."""
    text = spec.strip().lower()
    if not _RUN_IDS.fullmatch(text):
        return None
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


# --------------------------------------------------------------------------- reading


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    """Explicit URI, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def open_client(tracking_uri: str | None = None) -> tuple[MlflowClient, str]:
    """A client for an existing store; a missing sqlite file is an error, not a new database."""
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///").split("?", 1)[0]
        if path and path != ":memory:" and not Path(path).exists():
            raise ReportError(f"no MLflow database at {path} (tracking URI {redact_uri(uri)})")
    with _mlflow_errors(uri, "open the tracking store"):
        return MlflowClient(tracking_uri=uri), uri


@contextmanager
def _mlflow_errors(uri: str, doing: str, filter_string: str | None = None) -> Iterator[None]:
    """Turn MLflow / HTTP / DB exceptions into one-line ReportErrors with the URI redacted."""
    try:
        yield
    except ReportError:
        raise
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        message = message.replace(uri, redact_uri(uri))
        if len(message) > 300:
            message = message[:297] + "..."
        code = getattr(exc, "error_code", "")
        if filter_string and code == "INVALID_PARAMETER_VALUE":
            raise ReportError(f"invalid filter {filter_string!r}: {message}") from None
        reach = ("Connection", "Max retries", "timed out", "refused", "Name or service")
        if any(word in message for word in reach):
            raise ReportError(
                f"cannot reach tracking server {redact_uri(uri)}: {message}"
            ) from None
        raise ReportError(f"cannot {doing} at {redact_uri(uri)}: {message}") from None


def resolve_experiments(client: MlflowClient, uri: str, names: Sequence[str]) -> list[str]:
    """Experiment ids for names (or ids); an unknown one lists what exists."""
    ids: list[str] = []
    with _mlflow_errors(uri, "read experiments"):
        for name in names:
            experiment = client.get_experiment_by_name(name)
            if experiment is None and name.isdigit():
                try:
                    experiment = client.get_experiment(name)
                except Exception:
                    experiment = None
            if experiment is None:
                known = [e.name for e in client.search_experiments(max_results=20)]
                hint = f"; known: {', '.join(known)}" if known else ""
                raise ReportError(
                    f"unknown experiment {name!r} at {redact_uri(uri)}{hint}"
                )
            ids.append(experiment.experiment_id)
    return list(dict.fromkeys(ids))


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC while MLflow builds tens of thousands of ORM objects.

    Measured on sqlite: reading 20,000 runs takes ~12 s with the collector paused and ~40 s
    with it running (it rescans the growing heap again and again). Nothing here is cyclic.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _search(
    client: MlflowClient,
    uri: str,
    experiment_ids: list[str],
    filter_string: str,
    user_filter: str | None,
    phase: str,
    progress: ProgressFn | None,
    page_size: int,
) -> Iterator[Run]:
    from mlflow.entities import ViewType

    token: str | None = None
    count = 0
    while True:
        with _mlflow_errors(uri, "search runs", user_filter), _no_gc():
            page = client.search_runs(
                experiment_ids, filter_string, ViewType.ACTIVE_ONLY,
                max_results=page_size, page_token=token,
            )
        yield from page
        count += len(page)
        if progress:
            progress(phase, count)
        token = page.token
        if not token or not page:
            return


def _and(*clauses: str | None) -> str:
    return " AND ".join(f"{c}" for c in clauses if c and c.strip())


def _metric(metrics: Mapping[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None or math.isnan(value) else value


def _row(run: Run, kind: Literal["workflow", "node"]) -> RunRow:
    info, data = run.info, run.data
    tags, params, metrics = data.tags, data.params, data.metrics
    prefix = "total_" if kind == "workflow" else ""
    status_metric = _metric(metrics, "status")
    if kind == "workflow":
        status = tags.get("status") or info.status
        duration = _metric(metrics, "duration_seconds")
        priced = tags.get("pricing") != "unknown"
        retries = _metric(metrics, "retry_count")
    else:
        if status_metric is not None and info.status in ("FINISHED", "FAILED"):
            status = "FINISHED" if status_metric >= 1 else "FAILED"
        else:
            status = info.status
        duration_ms = _metric(metrics, "node_duration_ms")
        duration = None if duration_ms is None else duration_ms / 1000
        priced = tags.get("pricing") != "unknown"
        retries = _metric(metrics, "retries")
    if duration is None and info.end_time and info.start_time:
        duration = (info.end_time - info.start_time) / 1000
    if info.status in ("RUNNING", "SCHEDULED"):
        succeeded = None
    elif status_metric is not None:
        succeeded = status_metric >= 1
    else:
        succeeded = status == "FINISHED"
    return RunRow(
        run_id=info.run_id,
        kind=kind,
        start_ms=info.start_time or 0,
        status=status,
        succeeded=succeeded,
        input_tokens=_metric(metrics, f"{prefix}input_tokens") or 0.0,
        output_tokens=_metric(metrics, f"{prefix}output_tokens") or 0.0,
        cost_usd=_metric(metrics, "total_cost_usd" if kind == "workflow" else "cost_usd") or 0.0,
        priced=priced,
        duration_s=duration,
        retries=retries or 0.0,
        tags=tags,
        params=params,
        run_name=info.run_name or "",
        parent_id=tags.get(PARENT_TAG),
    )


def _time_clauses(since: datetime | None, until: datetime | None) -> list[str]:
    clauses = []
    if since:
        clauses.append(f"attributes.start_time >= {int(since.timestamp() * 1000)}")
    if until:
        clauses.append(f"attributes.start_time < {int(until.timestamp() * 1000)}")
    return clauses


def load_workflow_rows(
    client: MlflowClient,
    uri: str,
    experiment_ids: list[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    filter_string: str | None = None,
    progress: ProgressFn | None = None,
    page_size: int = PAGE_SIZE,
) -> list[RunRow]:
    """Workflow (parent) runs matching the window and the user's filter."""
    query = _and(f"tags.`{KIND_TAG}` = 'workflow'", *_time_clauses(since, until), filter_string)
    rows = {r.info.run_id: _row(r, "workflow") for r in _search(
        client, uri, experiment_ids, query, filter_string, "workflow", progress, page_size)}
    return list(rows.values())


def load_node_rows(
    client: MlflowClient,
    uri: str,
    experiment_ids: list[str],
    workflows: Sequence[RunRow],
    *,
    progress: ProgressFn | None = None,
    page_size: int = PAGE_SIZE,
) -> list[RunRow]:
    """Node runs of ``workflows``: one search over their time span, joined on the parent tag.

    Nodes start after their workflow starts and before it ends, so the window
    [first workflow start, last workflow end] holds them all (open-ended while a workflow is
    still running). Subgraph nodes are attached to the workflow through their parent node.
    """
    if not workflows:
        return []
    by_id = {w.run_id: w for w in workflows}
    first = min(w.start_ms for w in workflows)
    ends = [w.start_ms + w.duration_s * 1000 if w.duration_s is not None else None
            for w in workflows]
    clauses = [f"tags.`{KIND_TAG}` = 'node'", f"attributes.start_time >= {first - 1000}"]
    if all(e is not None for e in ends):
        clauses.append(f"attributes.start_time <= {int(max(e for e in ends if e)) + 1000}")
    nodes = {r.info.run_id: _row(r, "node") for r in _search(
        client, uri, experiment_ids, _and(*clauses), None, "node", progress, page_size)}
    out = []
    for node in nodes.values():
        parent, hops = node.parent_id, 0
        while parent in nodes and hops < 32:  # subgraph: climb to the workflow run
            parent, hops = nodes[parent].parent_id, hops + 1
        workflow = by_id.get(parent or "")
        if workflow is None:
            continue
        node.workflow = workflow
        if node.priced and not workflow.priced:
            # No node-level pricing tag: a node is unpriced when its model is one the
            # workflow lists as unpriced, or when the workflow does not say which.
            listed = workflow.tags.get("unpriced_models", "").split(",")
            models = {m.strip() for m in listed} - {""}
            node.priced = bool(models) and node.params.get("node_model") not in models
        out.append(node)
    return _exclusive_amounts(out)


def _exclusive_amounts(nodes: list[RunRow]) -> list[RunRow]:
    """A subgraph node's metrics include its children's; count each call once per report."""
    children: dict[str, list[RunRow]] = {}
    for node in nodes:
        if node.parent_id:
            children.setdefault(node.parent_id, []).append(node)
    result = []
    for node in nodes:
        kids = children.get(node.run_id)
        if kids:
            node = replace(
                node,
                input_tokens=max(0.0, node.input_tokens - sum(k.input_tokens for k in kids)),
                output_tokens=max(0.0, node.output_tokens - sum(k.output_tokens for k in kids)),
                cost_usd=max(0.0, node.cost_usd - sum(k.cost_usd for k in kids)),
            )
        result.append(node)
    return result


# --------------------------------------------------------------------------- aggregation


def group_value(row: RunRow, key: str) -> str:
    """The value of a group-by key for a row; attribution comes from the workflow run."""
    root = row.workflow or row
    value: str | None
    if key == "workflow":
        value = root.tags.get("workflow_name") or root.params.get("workflow_name") or (
            root.run_name)
    elif key == "workflow_version":
        value = root.tags.get("workflow_version") or root.params.get("workflow_version")
    elif key == "node":
        value = row.params.get("node_id") or (
            row.run_name.removeprefix("node_") if row.kind == "node" else None)
    elif key == "model":
        value = row.params.get("node_model") if row.kind == "node" else None
    elif key in _ATTRIBUTION_TAGS:
        value = root.tags.get(_ATTRIBUTION_TAGS[key])
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
    """Measures over ``rows``: sums, success rate over finished runs, mean and p95 duration."""
    runs = len(rows)
    completed = sum(1 for r in rows if r.succeeded is not None)
    succeeded = sum(1 for r in rows if r.succeeded)
    durations = [r.duration_s for r in rows if r.duration_s is not None]
    input_tokens = round(sum(r.input_tokens for r in rows))
    output_tokens = round(sum(r.output_tokens for r in rows))
    cost = sum(r.cost_usd for r in rows)
    return GroupStats(
        key=key,
        runs=runs,
        completed=completed,
        succeeded=succeeded,
        success_rate=succeeded / completed if completed else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        input_tokens_per_run=input_tokens / runs if runs else None,
        output_tokens_per_run=output_tokens / runs if runs else None,
        cost_usd=cost,
        cost_per_run=cost / runs if runs else None,
        duration_mean_s=sum(durations) / len(durations) if durations else None,
        duration_p95_s=percentile(durations, 95),
        retries=round(sum(r.retries for r in rows)),
        unpriced_runs=sum(1 for r in rows if not r.priced),
    )


def group_rows(rows: Sequence[RunRow], group_by: Sequence[str]) -> list[GroupStats]:
    """One GroupStats per distinct key, highest cost first (ties: key order)."""
    buckets: dict[tuple[str, ...], list[RunRow]] = defaultdict(list)
    for row in rows:
        buckets[tuple(group_value(row, k) for k in group_by)].append(row)
    stats = [summarize(members, key) for key, members in buckets.items()]
    return sorted(stats, key=lambda s: (-s.cost_usd, s.key))


# --------------------------------------------------------------------------- public API


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
) -> CostReport:
    """Group workflow runs (or, for ``node``/``model`` keys, node runs) and measure each group.

    ``filter_string`` is MLflow search syntax over the workflow runs (e.g.
    ``"tags.team = 'data'"``, ``"params.workflow_version = '1.0.0'"``). Unpriced runs (tag
    ``pricing=unknown``) are counted in ``unpriced_runs``; their cost is the priced part only.
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
    names = tuple(experiments or (DEFAULT_EXPERIMENT,))
    experiment_ids = resolve_experiments(client, uri, names)
    workflows = load_workflow_rows(
        client, uri, experiment_ids, since=since_dt, until=until_dt,
        filter_string=filter_string, progress=progress, page_size=page_size,
    )
    level: Literal["workflow", "node"] = "node" if NODE_KEYS & set(keys) else "workflow"
    rows = workflows
    if level == "node":
        rows = load_node_rows(client, uri, experiment_ids, workflows, progress=progress,
                              page_size=page_size)
    groups = group_rows(rows, keys)
    return CostReport(
        group_by=keys,
        level=level,
        groups=tuple(groups[:top] if top else groups),
        totals=summarize(rows, ("TOTAL",) * len(keys)),
        total_groups=len(groups),
        scope=ReportScope(redact_uri(uri), names, since_dt, until_dt, filter_string),
        rows=tuple(rows),
    )


def _delta(measure: str, base: GroupStats | None, cand: GroupStats | None) -> Delta:
    b = getattr(base, measure) if base else None
    c = getattr(cand, measure) if cand else None
    absolute = c - b if b is not None and c is not None else None
    relative = absolute / b if absolute is not None and b else None
    return Delta(measure, b, c, absolute, relative)


def _deltas(base: GroupStats | None, cand: GroupStats | None) -> tuple[Delta, ...]:
    return tuple(_delta(m, base, cand) for m in MEASURES if m not in ("completed", "succeeded"))


def _side_rows(
    client: MlflowClient,
    uri: str,
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
        return load_workflow_rows(client, uri, experiment_ids, since=since, until=until,
                                  filter_string=spec, progress=progress)
    rows: list[RunRow] = []
    for chunk in range(0, len(ids), 100):
        part = ids[chunk:chunk + 100]
        listed = ", ".join(f"'{i}'" for i in part)
        rows.extend(load_workflow_rows(client, uri, experiment_ids,
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
) -> Comparison:
    """Compare two sets of workflow runs, overall and per node.

    Each side is an MLflow filter over workflow runs (``"params.workflow_version = '1.0.0'"``)
    or a comma-separated list of run ids. A side that matches nothing yields ``None`` stats
    (see :attr:`Comparison.empty_sides`).
    """
    since_dt = parse_time_bound(since) if isinstance(since, str) else since
    until_dt = parse_time_bound(until, end=True) if isinstance(until, str) else until
    client, uri = open_client(tracking_uri)
    names = tuple(experiments or (DEFAULT_EXPERIMENT,))
    experiment_ids = resolve_experiments(client, uri, names)
    notes: list[str] = []
    sides = [
        _side_rows(client, uri, experiment_ids, spec, since_dt, until_dt, progress, notes, label)
        for spec, label in ((baseline, "baseline"), (candidate, "candidate"))
    ]
    nodes = load_node_rows(client, uri, experiment_ids, [*sides[0], *sides[1]],
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
        scope=ReportScope(redact_uri(uri), names, since_dt, until_dt, None),
        notes=tuple(notes),
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
    "Comparison",
    "CostReport",
    "Delta",
    "GroupStats",
    "NodeComparison",
    "ReportError",
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
