"""Retention: delete old workflow runs with their nested runs, close runs left RUNNING.

Two jobs, both scoped to runs *we* wrote (tag ``configurable_agents.kind``):

- :func:`cleanup_runs` deletes parent runs (kind ``workflow``) that started before a cutoff,
  together with every descendant (``mlflow.parentRunId`` chains; subgraph nodes nest
  deeper). MLflow does not cascade a parent's deletion to its nested runs, so we find the
  trees ourselves. ``purge`` then does what ``mlflow gc`` does for each run: delete the
  run's artifacts through its artifact repository and hard-delete its database rows.
- :func:`close_stale_runs` marks KILLED the parent runs a dead process left RUNNING
  (SIGKILL, OOM, a closed laptop), and their RUNNING nested runs.

Both page through ``search_runs`` with server-side filters, so memory and time follow the
number of runs matched, not the size of the experiment.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configurable_agents.config.schema import redact_uri
from configurable_agents.tracking.errors import flat_message, shorten
from configurable_agents.tracking.uri import prepare_tracking_uri

# Tag names from the run layout contract (docs: "MLflow run layout").
KIND_TAG = "configurable_agents.kind"
PARENT_TAG = "mlflow.parentRunId"
HOST_TAG = "configurable_agents.host"
PID_TAG = "configurable_agents.pid"
HEARTBEAT_TAG = "configurable_agents.heartbeat_ms"
TRACE_ID_TAG = "configurable_agents.trace_id"  # the workflow's MLflow trace (traces.py)
CLOSED_BY_TAG = "configurable_agents.closed_by"
CLOSED_REASON_TAG = "configurable_agents.closed_reason"
CLOSED_BY_VALUE = "cleanup --stale"

DEFAULT_EXPERIMENT = "configurable_agents"
DEFAULT_STALE_AFTER_MINUTES = 60.0
DEFAULT_PAGE_SIZE = 1000
DAY_MS = 86_400_000
# Nested runs start inside their parent's lifetime; the slack only widens the scan window
# that finds them (membership is decided by the parent-id chain, never by time).
_SCAN_SLACK_MS = 3_600_000

# The only tags cleanup reads; keeping just these bounds memory on large cleanups.
_KEPT_TAGS = frozenset({KIND_TAG, PARENT_TAG, HOST_TAG, PID_TAG, HEARTBEAT_TAG, TRACE_ID_TAG})
# MLflow's delete_traces takes at most 100 trace ids per call.
_TRACE_BATCH = 100

ProgressFn = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``: called as runs are found and processed."""


class RetentionError(Exception):
    """A one-line, user-facing problem (unknown experiment, unreachable store, bad argument)."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class RunRef:
    """The few facts about a run that cleanup needs."""

    run_id: str
    run_name: str
    start_time: int
    end_time: int | None
    status: str
    tags: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(slots=True)
class RunTree:
    """A workflow run and its descendants, in deletion order (descendants first, root last).

    Deleting leaves before their parent means an interrupted cleanup never strands live
    nested runs under a deleted parent: the parent is matched again next time.
    """

    root: RunRef
    runs: list[RunRef]

    @property
    def nested(self) -> list[RunRef]:
        return self.runs[:-1]

    @property
    def trace_id(self) -> str | None:
        """The workflow's trace (one per invocation), when it was logged with one."""
        return self.root.tags.get(TRACE_ID_TAG)


@dataclass(slots=True)
class ExperimentPlan:
    name: str
    experiment_id: str
    trees: list[RunTree] = field(default_factory=list)
    skipped_running: int = 0

    @property
    def run_count(self) -> int:
        return sum(len(t.runs) for t in self.trees)

    @property
    def trace_ids(self) -> list[str]:
        return [t.trace_id for t in self.trees if t.trace_id]


@dataclass(slots=True)
class CleanupPlan:
    """What a cleanup would delete; :func:`apply_cleanup` carries it out."""

    tracking_uri: str = field(repr=False)  # as given (may hold credentials): not printed
    cutoff_ms: int
    older_than_days: float
    include_running: bool
    experiments: list[ExperimentPlan]

    @property
    def workflow_count(self) -> int:
        return sum(len(e.trees) for e in self.experiments)

    @property
    def run_count(self) -> int:
        return sum(e.run_count for e in self.experiments)


@dataclass(slots=True)
class ExperimentCleanup:
    """Per-experiment counts. ``matched`` counts workflow runs, ``runs_matched`` with nested."""

    name: str
    experiment_id: str
    matched: int = 0
    runs_matched: int = 0
    deleted: int = 0
    purged: int = 0
    skipped_running: int = 0
    matched_run_ids: list[str] = field(default_factory=list)
    traces_matched: int = 0
    traces_deleted: int = 0


@dataclass(slots=True)
class CleanupSummary:
    tracking_uri: str  # redacted
    cutoff_ms: int
    older_than_days: float
    dry_run: bool
    purge: bool
    experiments: list[ExperimentCleanup]
    delete_traces: bool = True

    @property
    def matched(self) -> int:
        return sum(e.matched for e in self.experiments)

    @property
    def runs_matched(self) -> int:
        return sum(e.runs_matched for e in self.experiments)

    @property
    def deleted(self) -> int:
        return sum(e.deleted for e in self.experiments)

    @property
    def purged(self) -> int:
        return sum(e.purged for e in self.experiments)

    @property
    def traces_matched(self) -> int:
        return sum(e.traces_matched for e in self.experiments)

    @property
    def traces_deleted(self) -> int:
        return sum(e.traces_deleted for e in self.experiments)


@dataclass(frozen=True, slots=True)
class StaleRun:
    run_id: str
    run_name: str
    start_time: int
    reason: str
    end_time: int  # the KILLED run's end time: its last sign of life
    nested_running: list[str]


@dataclass(slots=True)
class ExperimentStale:
    name: str
    experiment_id: str
    running_checked: int = 0
    stale: list[StaleRun] = field(default_factory=list)
    closed: int = 0  # parents + nested runs marked KILLED (0 on a dry run)


@dataclass(slots=True)
class StaleSummary:
    tracking_uri: str  # redacted
    stale_after_minutes: float
    dry_run: bool
    experiments: list[ExperimentStale]

    @property
    def stale_count(self) -> int:
        return sum(len(e.stale) for e in self.experiments)

    @property
    def closed(self) -> int:
        return sum(e.closed for e in self.experiments)


# --------------------------------------------------------------------------- backend access


@contextmanager
def _errors(uri: str, doing: str) -> Iterator[None]:
    """MLflow / HTTP / database exceptions as one-line RetentionErrors, URI redacted."""
    try:
        yield
    except RetentionError:
        raise
    except Exception as exc:
        message = flat_message(exc, uri)
        reach = {
            "refused": "connection refused",
            "timed out": "timed out",
            "Name or service": "unknown host",
            "Max retries": "no response",
            "Connection": "connection failed",
        }
        for word, cause in reach.items():
            if word in message:
                raise RetentionError(
                    f"cannot reach tracking server {redact_uri(uri)} ({cause})"
                ) from None
        raise RetentionError(
            f"cannot {doing} at {redact_uri(uri)}: {shorten(message)}") from None


class _Backend:
    """One tracking store: a client, its experiments, paged searches, translated errors."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow.tracking import MlflowClient

        if not tracking_uri or not tracking_uri.strip():
            raise RetentionError("tracking URI is empty; pass e.g. sqlite:///mlflow.db")
        self.uri = prepare_tracking_uri(tracking_uri.strip())
        self.display_uri = redact_uri(self.uri)
        if self.uri.startswith("sqlite:///"):
            # MLflow would silently create an empty database: a typo must not look like
            # "nothing to clean up".
            path = self.uri.removeprefix("sqlite:///").split("?", 1)[0]
            if path and path != ":memory:" and not Path(path).exists():
                raise RetentionError(f"no MLflow database at {path} ({self.display_uri})")
        with _errors(self.uri, "open the tracking store"):
            self.client = MlflowClient(tracking_uri=self.uri)

    def experiments(self, names: Sequence[str]) -> list[tuple[str, str]]:
        """``(name, id)`` for each name; an unknown one is an error naming what exists."""
        if not names:
            raise RetentionError("no experiment given")
        found: dict[str, tuple[str, str]] = {}
        with _errors(self.uri, "read experiments"):
            for name in names:
                experiment = self.client.get_experiment_by_name(name)
                if experiment is not None and experiment.lifecycle_stage != "active":
                    raise RetentionError(
                        f"experiment {name!r} at {self.display_uri} is deleted; restore it "
                        "first, or remove it for good with `mlflow gc`"
                    )
                if experiment is None:
                    known = [e.name for e in self.client.search_experiments(max_results=20)]
                    hint = f"; known: {', '.join(known)}" if known else ""
                    raise RetentionError(
                        f"unknown experiment {name!r} at {self.display_uri}{hint}"
                    )
                found.setdefault(experiment.experiment_id, (name, experiment.experiment_id))
        return list(found.values())

    def search(self, experiment_id: str, filter_string: str, page_size: int) -> Iterator[RunRef]:
        """Every active run matching ``filter_string``, page by page (page tokens)."""
        from mlflow.entities import ViewType

        token: str | None = None
        while True:
            with _errors(self.uri, "search runs"):
                page = self.client.search_runs(
                    [experiment_id],
                    filter_string,
                    ViewType.ACTIVE_ONLY,
                    max_results=page_size,
                    order_by=["attributes.start_time ASC"],
                    page_token=token,
                )
            for run in page:
                info = run.info
                yield RunRef(
                    run_id=info.run_id,
                    run_name=info.run_name or "",
                    start_time=int(info.start_time or 0),
                    end_time=int(info.end_time) if info.end_time else None,
                    status=info.status,
                    tags={k: v for k, v in run.data.tags.items() if k in _KEPT_TAGS},
                )
            token = page.token
            if not token or not page:
                return

    def descendants(
        self, experiment_id: str, roots: Sequence[RunRef], now_ms: int, page_size: int
    ) -> dict[str, list[RunRef]]:
        """Children of every run under ``roots``, keyed by parent id (one windowed scan).

        Nested runs live inside their root's lifetime, so one search over that time window
        finds them all; the parent-id chain then decides membership. Runs without our kind
        tag are never returned, so a run someone else nested under ours is never touched.
        """
        if not roots:
            return {}
        low = min(r.start_time for r in roots) - _SCAN_SLACK_MS
        high = max(r.end_time or now_ms for r in roots) + _SCAN_SLACK_MS
        filter_string = (
            f"attributes.start_time >= {low} and attributes.start_time <= {high} "
            f"and tags.`{PARENT_TAG}` IS NOT NULL and tags.`{KIND_TAG}` IS NOT NULL"
        )
        children: dict[str, list[RunRef]] = {}
        for run in self.search(experiment_id, filter_string, page_size):
            parent = run.tags.get(PARENT_TAG)
            if parent and run.tags.get(KIND_TAG) != "workflow":
                children.setdefault(parent, []).append(run)
        return children


def _tree(root: RunRef, children: dict[str, list[RunRef]]) -> RunTree:
    """Post-order walk (descendants first); a visited set guards against id cycles."""
    order: list[RunRef] = []
    seen = {root.run_id}
    stack: list[tuple[RunRef, bool]] = [(root, False)]
    while stack:
        run, expanded = stack.pop()
        if expanded:
            order.append(run)
            continue
        stack.append((run, True))
        for child in children.get(run.run_id, ()):
            if child.run_id not in seen:
                seen.add(child.run_id)
                stack.append((child, False))
    return RunTree(root=root, runs=order)


def _now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------- cleanup


def plan_cleanup(
    tracking_uri: str,
    experiments: Sequence[str],
    older_than_days: float,
    *,
    include_running: bool = False,
    now_ms: int | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    progress: ProgressFn | None = None,
) -> CleanupPlan:
    """Find the workflow runs started before ``now - older_than_days`` and their trees.

    Reads only; nothing is changed. RUNNING workflow runs are counted and left out unless
    ``include_running``.
    """
    if older_than_days < 0:
        raise RetentionError(f"older_than_days must be >= 0 (got {older_than_days})")
    if page_size < 1:
        raise RetentionError(f"page_size must be >= 1 (got {page_size})")
    now_ms = _now_ms() if now_ms is None else now_ms
    cutoff_ms = now_ms - round(older_than_days * DAY_MS)
    backend = _Backend(tracking_uri)
    plans: list[ExperimentPlan] = []
    filter_string = (
        f"attributes.start_time < {cutoff_ms} and tags.`{KIND_TAG}` = 'workflow'"
    )
    found = 0
    for name, experiment_id in backend.experiments(experiments):
        plan = ExperimentPlan(name=name, experiment_id=experiment_id)
        roots: list[RunRef] = []
        for run in backend.search(experiment_id, filter_string, page_size):
            if run.status == "RUNNING" and not include_running:
                plan.skipped_running += 1
                continue
            roots.append(run)
            found += 1
            if progress and found % page_size == 0:
                progress("finding runs", found, None)
        children = backend.descendants(experiment_id, roots, now_ms, page_size)
        plan.trees = [_tree(root, children) for root in roots]
        plans.append(plan)
    return CleanupPlan(
        tracking_uri=backend.uri,
        cutoff_ms=cutoff_ms,
        older_than_days=older_than_days,
        include_running=include_running,
        experiments=plans,
    )


def summarize_plan(
    plan: CleanupPlan, *, dry_run: bool, purge: bool, delete_traces: bool = True
) -> CleanupSummary:
    """The summary of a plan before anything is applied (counts of deletes still zero)."""
    return CleanupSummary(
        tracking_uri=redact_uri(plan.tracking_uri),
        cutoff_ms=plan.cutoff_ms,
        older_than_days=plan.older_than_days,
        dry_run=dry_run,
        purge=purge,
        delete_traces=delete_traces,
        experiments=[
            ExperimentCleanup(
                name=e.name,
                experiment_id=e.experiment_id,
                matched=len(e.trees),
                runs_matched=e.run_count,
                skipped_running=e.skipped_running,
                matched_run_ids=[t.root.run_id for t in e.trees],
                traces_matched=len(e.trace_ids),
            )
            for e in plan.experiments
        ],
    )


class _Purger:
    """``mlflow gc``'s per-run steps: artifacts via the artifact repository, then the rows.

    ``mlflow gc`` (mlflow/cli/__init__.py, ``_gc_tracking_resources``) gets the store with
    ``mlflow.tracking._get_store``, calls ``get_artifact_repository(run.info.artifact_uri)
    .delete_artifacts()`` and then ``store._hard_delete_run(run_id)``. We run the same steps
    rather than invoking the click command, because that command prints a line per run
    and fails the whole batch on the first run it cannot find. MLflow has no public
    hard-delete API; these are the calls its own CLI relies on.
    """

    def __init__(self, backend: _Backend) -> None:
        from mlflow.tracking import _get_store

        with _errors(backend.uri, "open the backend store"):
            self.store: Any = _get_store(backend.uri)
        if not hasattr(self.store, "_hard_delete_run"):
            raise RetentionError(
                f"--purge needs direct access to the backend store (sqlite, postgresql, "
                f"mysql, file), not {backend.display_uri}: run cleanup without --purge, then "
                "`mlflow gc --backend-store-uri <database URI>` where the server runs"
            )
        self.backend = backend

    def purge(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        with _errors(self.backend.uri, f"purge run {run_id}"):
            try:
                run = self.store.get_run(run_id)
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return False  # purged meanwhile (a concurrent cleanup or mlflow gc)
                raise
            if run.info.artifact_uri:
                get_artifact_repository(run.info.artifact_uri).delete_artifacts()
                _remove_empty_run_dir(run.info.artifact_uri, run_id)
            self.store._hard_delete_run(run_id)
        return True


def _remove_empty_run_dir(artifact_uri: str, run_id: str) -> None:
    """A local store keeps ``<run_id>/`` after its ``artifacts/`` is gone; drop it if empty."""
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    if not artifact_uri.startswith("file:"):
        return
    run_dir = Path(url2pathname(urlsplit(artifact_uri).path)).parent
    if run_dir.name == run_id:
        with suppress(OSError):  # not empty, or already gone: leave it
            run_dir.rmdir()


def check_purge_supported(tracking_uri: str) -> None:
    """Raise :class:`RetentionError` unless ``tracking_uri`` allows hard deletes.

    Call it before asking for confirmation or deleting anything, so a purge against a
    tracking server fails up front rather than after the soft deletes.
    """
    _Purger(_Backend(tracking_uri))


def apply_cleanup(
    plan: CleanupPlan,
    *,
    purge: bool = False,
    delete_traces: bool = True,
    progress: ProgressFn | None = None,
) -> CleanupSummary:
    """Delete every run of ``plan`` (soft delete; ``purge`` also removes artifacts and rows).

    The workflows' traces are deleted too unless ``delete_traces`` is False: they hold the
    same prompts and responses, and MLflow has no soft delete for traces (nor does
    ``mlflow gc`` remove them), so a retention policy that left them would keep the data it
    promised to drop. A run already gone (another cleanup, a user in the UI) is skipped,
    not an error.
    """
    from mlflow.exceptions import MlflowException

    backend = _Backend(plan.tracking_uri)
    purger = _Purger(backend) if purge else None
    summary = summarize_plan(plan, dry_run=False, purge=purge, delete_traces=delete_traces)
    total = plan.run_count
    done = 0
    if progress:
        progress("deleting runs", 0, total)
    for experiment, counts in zip(plan.experiments, summary.experiments, strict=True):
        for tree in experiment.trees:
            for run in tree.runs:
                with _errors(backend.uri, f"delete run {run.run_id}"):
                    try:
                        backend.client.delete_run(run.run_id)
                        counts.deleted += 1
                    except MlflowException as exc:
                        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                            raise
                if purger and purger.purge(run.run_id):
                    counts.purged += 1
                done += 1
                if progress:
                    progress("deleting runs", done, total)
        if delete_traces:
            counts.traces_deleted = _delete_traces(backend, experiment)
    return summary


def _delete_traces(backend: _Backend, experiment: ExperimentPlan) -> int:
    """Delete the plan's traces of one experiment; ids already gone are simply not counted."""
    ids = experiment.trace_ids
    deleted = 0
    for first in range(0, len(ids), _TRACE_BATCH):
        with _errors(backend.uri, "delete traces"):
            deleted += backend.client.delete_traces(
                experiment.experiment_id, trace_ids=ids[first:first + _TRACE_BATCH])
    return deleted


def cleanup_runs(
    tracking_uri: str,
    experiments: Sequence[str],
    older_than_days: float,
    *,
    dry_run: bool = False,
    purge: bool = False,
    delete_traces: bool = True,
    include_running: bool = False,
    progress: ProgressFn | None = None,
    now_ms: int | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> CleanupSummary:
    """Delete workflow runs older than ``older_than_days`` (by start time) with their trees.

    Only runs tagged ``configurable_agents.kind`` in the named experiments are touched;
    newer runs and (unless ``include_running``) RUNNING ones are left alone. The deleted
    workflows' traces go too unless ``delete_traces`` is False. ``dry_run`` reports what
    would go and changes nothing.
    """
    if purge:
        check_purge_supported(tracking_uri)
    plan = plan_cleanup(
        tracking_uri,
        experiments,
        older_than_days,
        include_running=include_running,
        now_ms=now_ms,
        page_size=page_size,
        progress=progress,
    )
    if dry_run:
        return summarize_plan(plan, dry_run=True, purge=purge, delete_traces=delete_traces)
    return apply_cleanup(plan, purge=purge, delete_traces=delete_traces, progress=progress)


# --------------------------------------------------------------------------- stale runs


def pid_alive(pid: int) -> bool | None:
    """True / False when this host can tell whether ``pid`` runs; None when it cannot.

    ``os.kill(pid, 0)`` sends nothing on POSIX. On Windows it would *terminate* the
    process, so there we never probe and fall back to the heartbeat.
    """
    if pid <= 0 or sys.platform == "win32":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except OSError:
        return None
    return True


def _int_tag(tags: dict[str, str], key: str) -> int | None:
    try:
        return int(tags[key])
    except (KeyError, ValueError):
        return None


def stale_reason(
    run: RunRef, *, now_ms: int, stale_after_ms: int, hostname: str
) -> str | None:
    """Why a RUNNING workflow run is stale, or None when it may still be alive.

    On the host that wrote it, the pid decides: a live pid is never stale (a long
    workflow is not a dead one). Elsewhere, or without a pid, the last heartbeat (or the
    start time) must be older than ``stale_after_ms``.
    """
    host = run.tags.get(HOST_TAG)
    pid = _int_tag(run.tags, PID_TAG)
    if host == hostname and pid is not None:
        alive = pid_alive(pid)
        if alive is False:
            return f"pid {pid} is not running on {host}"
        if alive:
            return None
    heartbeat = _int_tag(run.tags, HEARTBEAT_TAG)
    seen = heartbeat if heartbeat is not None else run.start_time
    what = "last heartbeat" if heartbeat is not None else "started"
    age_ms = now_ms - seen
    if age_ms <= stale_after_ms:
        return None
    where = f" on {host}" if host else ""
    return f"no heartbeat{where} for {age_ms / 60_000:.0f} min ({what} {_iso(seen)})"


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def _last_sign_of_life(tree: RunTree) -> int:
    """The KILLED end time: the latest time anything in the tree is known to have run.

    "Now" would stretch a run that died in minutes into one lasting days and skew every
    duration chart; the heartbeat and the nested runs' own times are what we know.
    """
    latest = max(tree.root.start_time, _int_tag(tree.root.tags, HEARTBEAT_TAG) or 0)
    for run in tree.nested:
        latest = max(latest, run.start_time, run.end_time or 0)
    return latest


def close_stale_runs(
    tracking_uri: str,
    experiments: Sequence[str],
    *,
    stale_after_minutes: float = DEFAULT_STALE_AFTER_MINUTES,
    dry_run: bool = False,
    now_ms: int | None = None,
    hostname: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> StaleSummary:
    """Mark KILLED the RUNNING workflow runs whose process died, and their RUNNING nested runs.

    Each closed run gets tags ``configurable_agents.closed_by = cleanup --stale`` and
    ``configurable_agents.closed_reason``. ``dry_run`` only reports.
    """
    from mlflow.entities import RunTag

    if stale_after_minutes <= 0:
        raise RetentionError(f"stale_after_minutes must be > 0 (got {stale_after_minutes})")
    now_ms = _now_ms() if now_ms is None else now_ms
    hostname = socket.gethostname() if hostname is None else hostname
    stale_after_ms = round(stale_after_minutes * 60_000)
    backend = _Backend(tracking_uri)
    filter_string = f"attributes.status = 'RUNNING' and tags.`{KIND_TAG}` = 'workflow'"
    results: list[ExperimentStale] = []
    for name, experiment_id in backend.experiments(experiments):
        result = ExperimentStale(name=name, experiment_id=experiment_id)
        stale: list[tuple[RunRef, str]] = []
        for run in backend.search(experiment_id, filter_string, page_size):
            result.running_checked += 1
            reason = stale_reason(
                run, now_ms=now_ms, stale_after_ms=stale_after_ms, hostname=hostname
            )
            if reason is not None:
                stale.append((run, reason))
        children = backend.descendants(experiment_id, [r for r, _ in stale], now_ms, page_size)
        for root, reason in stale:
            tree = _tree(root, children)
            end_time = _last_sign_of_life(tree)
            to_close = [r for r in tree.runs if r.status == "RUNNING"]
            result.stale.append(
                StaleRun(
                    run_id=root.run_id,
                    run_name=root.run_name,
                    start_time=root.start_time,
                    reason=reason,
                    end_time=end_time,
                    nested_running=[r.run_id for r in to_close if r is not root],
                )
            )
            if dry_run:
                continue
            tags = [RunTag(CLOSED_BY_TAG, CLOSED_BY_VALUE), RunTag(CLOSED_REASON_TAG, reason)]
            for run in to_close:
                with _errors(backend.uri, f"close run {run.run_id}"):
                    backend.client.log_batch(run.run_id, tags=tags, synchronous=True)
                    backend.client.set_terminated(
                        run.run_id, "KILLED", end_time=max(end_time, run.start_time)
                    )
                result.closed += 1
        results.append(result)
    return StaleSummary(
        tracking_uri=backend.display_uri,
        stale_after_minutes=stale_after_minutes,
        dry_run=dry_run,
        experiments=results,
    )


__all__ = [
    "CLOSED_BY_TAG",
    "CLOSED_BY_VALUE",
    "CLOSED_REASON_TAG",
    "DEFAULT_EXPERIMENT",
    "DEFAULT_STALE_AFTER_MINUTES",
    "HEARTBEAT_TAG",
    "HOST_TAG",
    "KIND_TAG",
    "PID_TAG",
    "CleanupPlan",
    "CleanupSummary",
    "ExperimentCleanup",
    "ExperimentPlan",
    "ExperimentStale",
    "RetentionError",
    "RunRef",
    "RunTree",
    "StaleRun",
    "StaleSummary",
    "apply_cleanup",
    "check_purge_supported",
    "cleanup_runs",
    "close_stale_runs",
    "pid_alive",
    "plan_cleanup",
    "stale_reason",
    "summarize_plan",
]
