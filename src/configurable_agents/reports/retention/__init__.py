"""Retention: delete old workflow runs with their nested runs, close runs left RUNNING.

Two jobs, both scoped to runs *we* wrote (tag ``configurable_agents.kind``):

- :func:`cleanup_runs` (module ``cleanup``) deletes workflow runs that started before a
  cutoff with every nested run and their traces; ``purge`` also removes artifacts and rows,
  as ``mlflow gc`` does. Old runs other code logged are counted, never touched.
- :func:`close_stale_runs` (module ``stale``) marks KILLED the workflow runs a dead process
  left RUNNING, and their RUNNING nested runs.

``model`` holds the plans and summaries, ``backend`` the store access both jobs share. This
package re-exports the public API; import from here.
"""

from __future__ import annotations

from configurable_agents.reports.retention.cleanup import (
    apply_cleanup,
    check_older_than_days,
    check_purge_supported,
    cleanup_runs,
    plan_cleanup,
    summarize_plan,
)
from configurable_agents.reports.retention.model import (
    CLOSED_BY_VALUE,
    DAY_MS,
    DEFAULT_EXPERIMENT,
    DEFAULT_PAGE_SIZE,
    DEFAULT_STALE_AFTER_MINUTES,
    MAX_OLDER_THAN_DAYS,
    MAX_STALE_AFTER_MINUTES,
    OTHER_RUNS_REASON,
    CleanupPlan,
    CleanupSummary,
    ExperimentCleanup,
    ExperimentPlan,
    ExperimentStale,
    ProgressFn,
    RetentionError,
    RunRef,
    RunTree,
    StaleRun,
    StaleSummary,
)
from configurable_agents.reports.retention.stale import (
    check_stale_after_minutes,
    close_stale_runs,
    pid_alive,
    stale_reason,
)

__all__ = [
    "CLOSED_BY_VALUE",
    "DAY_MS",
    "DEFAULT_EXPERIMENT",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_STALE_AFTER_MINUTES",
    "MAX_OLDER_THAN_DAYS",
    "MAX_STALE_AFTER_MINUTES",
    "OTHER_RUNS_REASON",
    "CleanupPlan",
    "CleanupSummary",
    "ExperimentCleanup",
    "ExperimentPlan",
    "ExperimentStale",
    "ProgressFn",
    "RetentionError",
    "RunRef",
    "RunTree",
    "StaleRun",
    "StaleSummary",
    "apply_cleanup",
    "check_older_than_days",
    "check_purge_supported",
    "check_stale_after_minutes",
    "cleanup_runs",
    "close_stale_runs",
    "pid_alive",
    "plan_cleanup",
    "stale_reason",
    "summarize_plan",
]
