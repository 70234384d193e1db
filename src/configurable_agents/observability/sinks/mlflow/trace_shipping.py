"""The MLflow sink's side of batched trace shipping: send the waiting spans, spool a lost batch.

Spans of many workflows share one ``log_spans`` request (:mod:`.traces`); these helpers
keep that out of the sink's delivery loop: ticks send the batches that are due, ``flush``
sends all of them, and a batch that failed twice is spooled workflow by workflow, so the
replay (idempotent by LangChain run id, same trace and span ids) writes it exactly once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from configurable_agents.observability.sinks.mlflow.traces import (
    BatchFailed,
    PendingSpans,
    export_trace,
    flush_traces,
    on_trace_batch_failed,
    send_due_traces,
    spoolable_trace,
)

if TYPE_CHECKING:
    from configurable_agents.observability.diagnostics import Diagnostics
    from configurable_agents.observability.facts.plan import RunPlan
    from configurable_agents.observability.facts.workflow_facts import WorkflowFacts
    from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter
    from configurable_agents.observability.sinks.spool import Spool


def ship_trace(writer: MlflowWriter, facts: WorkflowFacts, plan: RunPlan, experiment_id: str,
               run_id: str, on_failed: BatchFailed, *, batched: bool) -> str | None:
    """Write the workflow's trace info now; its spans join the batch (context: for a spool)."""
    on_trace_batch_failed(writer, on_failed)
    return export_trace(writer, facts.record, plan, experiment_id, run_id, facts.options,
                        context=(facts, plan, run_id), batched=batched)


def send_traces(writer: MlflowWriter, diagnostics: Diagnostics, timeout: float | None) -> bool:
    """Send batched spans: the due ones (``timeout`` None: a tick) or all, waiting up to it."""
    try:
        if timeout is None:
            send_due_traces(writer)
            return True
        return flush_traces(writer, timeout)
    except Exception as exc:
        diagnostics.internal_error("export:trace", exc)
        return False


def spool_failed_batch(spool: Spool, diagnostics: Diagnostics, group: list[PendingSpans],
                       exc: BaseException) -> int:
    """Spool each workflow of a span batch that failed twice; returns how many were spooled.

    Each entry names the runs already written (found again by LangChain run id on replay)
    and carries the finished trace, which the replay writes with the same ids.
    """
    diagnostics.warn_once(
        f"trace-batch:{type(exc).__name__}", "an MLflow span batch failed (%s: %s); its "
        "traces are spooled to %s and replayed", type(exc).__name__,
        diagnostics.scrub(str(exc)), spool.directory,
    )
    spooled = 0
    for item in group:
        facts, plan, run_id = _context(item)
        try:
            spool.put(facts.experiment, facts.langchain_run_id, run_id, plan,
                      spoolable_trace(item))
        except OSError as spool_exc:
            diagnostics.internal_error("spool:trace", spool_exc)
            continue
        spooled += 1
    return spooled


def _context(item: PendingSpans) -> tuple[Any, Any, str]:
    facts, plan, run_id = item.context
    return facts, plan, run_id
