"""What retention works on and reports: run references, plans, summaries, and its error.

Plain dataclasses, no I/O. ``backend`` fills :class:`RunRef` s, ``cleanup`` and ``stale``
turn them into plans and summaries; the commands print them and ``to_dict()`` gives them to
tools as JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from configurable_agents.names import Tag

DEFAULT_EXPERIMENT = "configurable_agents"
DEFAULT_STALE_AFTER_MINUTES = 60.0
DEFAULT_PAGE_SIZE = 1000
DAY_MS = 86_400_000
# Bounds of the periods: a century covers every real retention policy and keeps the cutoff
# a number MLflow can compare (``inf`` / ``1e308`` days would overflow it).
MAX_OLDER_THAN_DAYS = 36_500.0
MAX_STALE_AFTER_MINUTES = MAX_OLDER_THAN_DAYS * 24 * 60
# Foreign old runs are counted up to this many (a count, not a listing: it only explains).
OTHER_RUNS_COUNT_LIMIT = 10_000
CLOSED_BY_VALUE = "cleanup --stale"

ProgressFn = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``: called as runs are found and processed."""

OTHER_RUNS_REASON = (
    f"not written by configurable-agents (no {Tag.KIND} = workflow tag), so never deleted"
)


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
        return self.root.tags.get(Tag.TRACE_ID)


@dataclass(slots=True)
class ExperimentPlan:
    name: str
    experiment_id: str
    trees: list[RunTree] = field(default_factory=list)
    skipped_running: int = 0
    # Runs older than the cutoff that we did not write (no kind tag): left alone, counted.
    other_runs: int = 0
    other_runs_capped: bool = False  # the count stopped at OTHER_RUNS_COUNT_LIMIT

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

    other_runs: int = 0
    other_runs_capped: bool = False

    def other_runs_text(self) -> str | None:
        """``"12 other runs ... left: <why>"``, or None when there were none."""
        if not self.other_runs:
            return None
        count = f"{self.other_runs:,}{'+' if self.other_runs_capped else ''}"
        return f"{count} other runs older than the cutoff left: {OTHER_RUNS_REASON}"


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

    @property
    def other_runs(self) -> int:
        return sum(e.other_runs for e in self.experiments)

    def to_dict(self) -> dict[str, Any]:
        """Everything the summary says, for ``cleanup --json`` and tools."""
        return {
            **{k: v for k, v in asdict(self).items() if k != "experiments"},
            "matched": self.matched,
            "runs_matched": self.runs_matched,
            "deleted": self.deleted,
            "purged": self.purged,
            "traces_matched": self.traces_matched,
            "traces_deleted": self.traces_deleted,
            "other_runs": self.other_runs,
            "other_runs_reason": OTHER_RUNS_REASON,
            "experiments": [asdict(e) for e in self.experiments],
        }


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

