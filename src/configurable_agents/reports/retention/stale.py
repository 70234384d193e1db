"""Closing workflow runs a dead process left RUNNING.

:func:`close_stale_runs` marks KILLED the parent runs a dead process left RUNNING (SIGKILL,
OOM, a closed laptop), and their RUNNING nested runs, with tags saying who closed them and
why. On the host that wrote a run its pid decides; elsewhere its heartbeat tag does.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from collections.abc import Sequence

from configurable_agents.names import Kind, Status, Tag
from configurable_agents.reports.retention.backend import (
    Backend,
    current_ms,
    run_tree,
    store_errors,
)
from configurable_agents.reports.retention.model import (
    CLOSED_BY_VALUE,
    DEFAULT_PAGE_SIZE,
    DEFAULT_STALE_AFTER_MINUTES,
    MAX_STALE_AFTER_MINUTES,
    ExperimentStale,
    RetentionError,
    RunRef,
    RunTree,
    StaleRun,
    StaleSummary,
)


def check_stale_after_minutes(value: float, name: str = "stale_after_minutes") -> float:
    """``value`` when it is a usable heartbeat age in minutes, else a RetentionError."""
    if not math.isfinite(value) or not 0 < value <= MAX_STALE_AFTER_MINUTES:
        raise RetentionError(
            f"{name} must be > 0 and at most {MAX_STALE_AFTER_MINUTES:,.0f} minutes "
            f"(got {value:g})"
        )
    return value


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
    host = run.tags.get(Tag.HOST)
    pid = _int_tag(run.tags, Tag.PID)
    if host == hostname and pid is not None:
        alive = pid_alive(pid)
        if alive is False:
            return f"pid {pid} is not running on {host}"
        if alive:
            return None
    heartbeat = _int_tag(run.tags, Tag.HEARTBEAT_MS)
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
    latest = max(tree.root.start_time, _int_tag(tree.root.tags, Tag.HEARTBEAT_MS) or 0)
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

    check_stale_after_minutes(stale_after_minutes)
    now_ms = current_ms() if now_ms is None else now_ms
    hostname = socket.gethostname() if hostname is None else hostname
    stale_after_ms = round(stale_after_minutes * 60_000)
    backend = Backend(tracking_uri)
    filter_string = (f"attributes.status = '{Status.RUNNING}' "
                     f"and tags.`{Tag.KIND}` = '{Kind.WORKFLOW}'")
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
            tree = run_tree(root, children)
            end_time = _last_sign_of_life(tree)
            to_close = [r for r in tree.runs if r.status == Status.RUNNING]
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
            tags = [RunTag(Tag.CLOSED_BY, CLOSED_BY_VALUE), RunTag(Tag.CLOSED_REASON, reason)]
            for run in to_close:
                with store_errors(backend.uri, f"close run {run.run_id}"):
                    backend.client.log_batch(run.run_id, tags=tags, synchronous=True)
                    backend.client.set_terminated(
                        run.run_id, Status.KILLED, end_time=max(end_time, run.start_time)
                    )
                result.closed += 1
        results.append(result)
    return StaleSummary(
        tracking_uri=backend.display_uri,
        stale_after_minutes=stale_after_minutes,
        dry_run=dry_run,
        experiments=results,
    )

