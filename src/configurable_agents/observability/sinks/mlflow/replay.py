"""Replay spooled workflows into MLflow, idempotently (the background drain and `sync`).

Each spooled file holds the assembled runs (and the finished trace), so a replay
writes exactly what would have been written, keyed by the LangChain run id so a
workflow that partly landed before the outage is completed, never duplicated.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from configurable_agents.names import Tag
from configurable_agents.observability.sinks.mlflow.rejection import is_rejection
from configurable_agents.observability.sinks.spool import BadSpoolFile, Spool, SpoolUnsafeError
from configurable_agents.tracking.errors import flat_message, shorten

logger = logging.getLogger("configurable_agents.observability")


@dataclass(slots=True)
class ReplayResult:
    written: int = 0
    failed: int = 0
    corrupt: int = 0  # files that are not valid spooled workflows (set aside in rejected/)
    rejected: int = 0  # valid files MLflow refused even cleaned (set aside in rejected/)
    unsafe: str | None = None  # why nothing was replayed (folder not ours / writable by others)
    bad_files: list[str] = field(default_factory=list)  # "name: reason", one per set-aside file
    traces: int = 0
    trace_errors: int = 0  # runs written, trace not: the run's trace tag is removed


def replay_spool(
    spool: Spool,
    writer: Any,
    on_error: Callable[[BaseException], None] | None = None,
    limit: int | None = None,
) -> ReplayResult:
    """Write spooled workflows to MLflow idempotently; stop at the first backend error.

    Bad files and workflows MLflow refuses are set aside (``rejected/``) and counted;
    they never stop the others. A folder that is not safe replays nothing.
    """
    result = ReplayResult()
    try:
        spool.check_safe()
    except SpoolUnsafeError as exc:
        result.unsafe = str(exc)
        logger.warning("%s", exc)
        return result
    claims = spool.claim()
    try:
        while limit is None or result.written < limit:
            try:
                item = next(claims)
            except (StopIteration, SpoolUnsafeError):
                break
            if isinstance(item, BadSpoolFile):
                result.corrupt += 1
                result.bad_files.append(f"{item.name}: {item.reason}")
                logger.warning("spool file %s set aside in %s: %s", item.name,
                               spool.directory / "rejected", item.reason)
            elif not _replay_one(spool, writer, item, result, on_error):
                break
    finally:
        claims.close()
    return result


def _replay_one(spool: Spool, writer: Any, item: Any, result: ReplayResult,
                on_error: Callable[[BaseException], None] | None) -> bool:
    """Write one claimed workflow; False when the backend failed (stop the replay)."""
    try:
        try:
            experiment_id = writer.experiment_id(item.experiment)
            run_id = writer.write_tree(experiment_id, item.plan, item.mlflow_run_id,
                                       idempotent=True, langchain_run_id=item.langchain_run_id)
        except Exception as exc:
            if not is_rejection(exc):
                raise
            # Refused: maybe its experiment was deleted since the id was cached. Look it
            # up again (a deleted one is restored, a missing one created), then once more.
            writer.forget_experiment(item.experiment)
            experiment_id = writer.experiment_id(item.experiment)
            run_id = writer.write_tree(experiment_id, item.plan, None, idempotent=True,
                                       langchain_run_id=item.langchain_run_id)
    except Exception as exc:
        if is_rejection(exc):
            reason = f"MLflow refused it: {type(exc).__name__}: " + shorten(
                flat_message(exc, writer.tracking_uri))
            spool.reject(item, reason)
            result.rejected += 1
            result.bad_files.append(f"{item.path.name.split('.claimed-')[0]}: {reason}")
            logger.warning("spooled workflow %s set aside: %s", item.langchain_run_id, reason)
            return True
        spool.release(item)
        result.failed += 1
        if on_error is not None:
            on_error(exc)
        return False
    if item.trace is not None:
        trace_error = _replay_trace(writer, item.trace, experiment_id, run_id, result)
        if trace_error is not None:  # the backend failed: keep it for the next replay
            spool.release(item)
            result.failed += 1
            if on_error is not None:
                on_error(trace_error)
            return False
    spool.done(item)
    result.written += 1
    return True


def _replay_trace(writer: Any, trace: dict[str, Any], experiment_id: str, run_id: str,
                  result: ReplayResult) -> BaseException | None:
    """Write a spooled workflow's trace after its runs (written idempotently just before).

    A backend failure (down, 5xx, lost answer) is returned: the workflow stays spooled
    and the next replay finds its runs and writes the trace (an upsert by trace id). A
    trace MLflow refuses can never land: the runs stay, trace-less, and are done.
    """
    from configurable_agents.observability.sinks.mlflow.traces import export_spooled_trace

    try:
        export_spooled_trace(writer, trace, experiment_id, run_id)
        result.traces += 1
        return None
    except Exception as exc:
        if not is_rejection(exc):
            return exc
        result.trace_errors += 1
        logger.warning("the trace of replayed run %s was refused (%s: %s)", run_id,
                       type(exc).__name__, shorten(flat_message(exc, writer.tracking_uri)))
        with contextlib.suppress(Exception):  # never point at a trace that is not there
            writer.client.delete_tag(run_id, Tag.TRACE_ID)
        return None
