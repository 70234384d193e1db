"""Deleting old workflow runs with their nested runs (and their traces).

:func:`cleanup_runs` deletes parent runs (kind ``workflow``) that started before a cutoff,
together with every descendant (``mlflow.parentRunId`` chains; subgraph nodes nest deeper).
MLflow does not cascade a parent's deletion to its nested runs, so we find the trees
ourselves. ``purge`` then does what ``mlflow gc`` does for each run: delete the run's
artifacts through its artifact repository and hard-delete its database rows.

Only runs *we* wrote (tag ``configurable_agents.kind``) are ever deleted; old runs that other
code logged to the same experiment are counted (``other_runs``) so the summary can say why
they stayed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from configurable_agents.config.schema import redact_uri
from configurable_agents.names import Kind, Status, Tag
from configurable_agents.reports.retention.backend import (
    Backend,
    current_ms,
    run_tree,
    store_errors,
)
from configurable_agents.reports.retention.model import (
    DAY_MS,
    DEFAULT_PAGE_SIZE,
    MAX_OLDER_THAN_DAYS,
    CleanupPlan,
    CleanupSummary,
    ExperimentCleanup,
    ExperimentPlan,
    ProgressFn,
    RetentionError,
    RunRef,
)

# MLflow's delete_traces takes at most 100 trace ids per call.
_TRACE_BATCH = 100


def check_older_than_days(value: float, name: str = "older_than_days") -> float:
    """``value`` when it is a usable period in days, else a one-line RetentionError."""
    if not math.isfinite(value) or not 0 <= value <= MAX_OLDER_THAN_DAYS:
        raise RetentionError(
            f"{name} must be >= 0 and at most {MAX_OLDER_THAN_DAYS:,.0f} days "
            f"(got {value:g})"
        )
    return value


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
    check_older_than_days(older_than_days)
    if page_size < 1:
        raise RetentionError(f"page_size must be >= 1 (got {page_size})")
    now_ms = current_ms() if now_ms is None else now_ms
    cutoff_ms = now_ms - round(older_than_days * DAY_MS)
    backend = Backend(tracking_uri)
    plans: list[ExperimentPlan] = []
    filter_string = (
        f"attributes.start_time < {cutoff_ms} and tags.`{Tag.KIND}` = '{Kind.WORKFLOW}'"
    )
    found = 0
    for name, experiment_id in backend.experiments(experiments):
        plan = ExperimentPlan(name=name, experiment_id=experiment_id)
        roots: list[RunRef] = []
        for run in backend.search(experiment_id, filter_string, page_size):
            if run.status == Status.RUNNING and not include_running:
                plan.skipped_running += 1
                continue
            roots.append(run)
            found += 1
            if progress and found % page_size == 0:
                progress("finding runs", found, None)
        children = backend.descendants(experiment_id, roots, now_ms, page_size)
        plan.trees = [run_tree(root, children) for root in roots]
        plan.other_runs, plan.other_runs_capped = backend.count_foreign(
            experiment_id, cutoff_ms, page_size)
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
                other_runs=e.other_runs,
                other_runs_capped=e.other_runs_capped,
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

    def __init__(self, backend: Backend) -> None:
        from mlflow.tracking import _get_store

        with store_errors(backend.uri, "open the backend store"):
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

        with store_errors(self.backend.uri, f"purge run {run_id}"):
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
    _Purger(Backend(tracking_uri))


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

    backend = Backend(plan.tracking_uri)
    purger = _Purger(backend) if purge else None
    summary = summarize_plan(plan, dry_run=False, purge=purge, delete_traces=delete_traces)
    total = plan.run_count
    done = 0
    if progress:
        progress("deleting runs", 0, total)
    for experiment, counts in zip(plan.experiments, summary.experiments, strict=True):
        for tree in experiment.trees:
            for run in tree.runs:
                with store_errors(backend.uri, f"delete run {run.run_id}"):
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


def _delete_traces(backend: Backend, experiment: ExperimentPlan) -> int:
    """Delete the plan's traces of one experiment; ids already gone are simply not counted."""
    ids = experiment.trace_ids
    deleted = 0
    for first in range(0, len(ids), _TRACE_BATCH):
        with store_errors(backend.uri, "delete traces"):
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
