"""The MLflow sink's side of batched trace shipping: write, send the waiting spans, spool a loss.

Spans of many workflows share one ``log_spans`` request (:mod:`.traces`); these helpers
keep that out of the sink's delivery loop: the trace info is written after the runs, ticks
send the span batches that are due, ``flush`` sends all of them, and a batch that failed
twice is spooled workflow by workflow, so the replay (idempotent by LangChain run id, same
trace and span ids) writes it exactly once. With ``durability: disk`` a workflow's journal
file (which holds its trace) is kept until its span batch lands, so a SIGKILL while spans
wait loses no trace: the next drain or ``sync`` writes it; a failed batch hands the journal
back to the spool instead of writing a second file.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from configurable_agents.names import Tag
from configurable_agents.observability.sinks.mlflow.traces import (
    PendingSpans,
    export_trace,
    flush_traces,
    on_trace_batch_failed,
    on_trace_batch_sent,
    send_due_traces,
    spoolable_trace,
)

if TYPE_CHECKING:
    from configurable_agents.config.schema import MLFlowConfig
    from configurable_agents.observability.diagnostics import Diagnostics
    from configurable_agents.observability.facts.model import WorkflowFacts
    from configurable_agents.observability.sinks.mlflow.plan import PlanOptions
    from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter
    from configurable_agents.observability.sinks.run_plan import RunPlan
    from configurable_agents.observability.sinks.spool import Spool


class ShippingSink(Protocol):
    """What these helpers use of the MLflow sink."""

    config: MLFlowConfig
    diagnostics: Diagnostics
    plan_options: PlanOptions
    spool: Spool
    closing: bool

    @property
    def writer(self) -> MlflowWriter: ...

    def spooled_for_replay(self, count: int) -> None: ...

    def take_journal(self, langchain_run_id: str) -> Path | None: ...


@dataclass(frozen=True, slots=True)
class SpoolContext:
    """What a pending trace needs if its span batch fails (spooled like a workflow) or
    lands (``journal``: its ``durability: disk`` file, removed then)."""

    experiment: str
    langchain_run_id: str
    plan: RunPlan
    run_id: str
    journal: Path | None


def write_trace(sink: ShippingSink, facts: WorkflowFacts, plan: RunPlan, run_id: str,
                experiment: tuple[str, str]) -> None:
    """The trace after its runs: info now, spans batched; a failure never touches the runs.

    ``experiment`` is (name, id): the name goes with the pending trace so that a batch
    that cannot be sent is spooled exactly like a workflow (the replay resolves the name).
    """

    def batch_failed(group: list[PendingSpans], exc: BaseException) -> None:
        if spooled := spool_failed_batch(sink.spool, sink.diagnostics, group, exc):
            sink.spooled_for_replay(spooled)

    def batch_sent(group: list[PendingSpans]) -> None:
        for item in group:
            if (journal := _context(item).journal) is not None:
                with contextlib.suppress(OSError):
                    sink.spool.done(journal)

    name, experiment_id = experiment
    # Sync mode: written on return; after close began no tick will send a batch.
    batched = sink.config.async_logging and not sink.closing
    journal = sink.take_journal(facts.langchain_run_id) if batched else None
    pending = False
    try:
        on_trace_batch_failed(sink.writer, batch_failed)
        on_trace_batch_sent(sink.writer, batch_sent)
        pending = export_trace(sink.writer, facts, plan, experiment_id, run_id,
                               sink.plan_options, batched=batched,
                               context=SpoolContext(name, facts.langchain_run_id, plan,
                                                    run_id, journal)) is not None and batched
    except Exception as exc:
        sink.diagnostics.internal_error("export:trace", exc)
        with contextlib.suppress(Exception):  # never point at a trace that is not there
            sink.writer.client.delete_tag(run_id, Tag.TRACE_ID)
    if journal is not None and not pending:  # no spans wait: its runs are all there is
        with contextlib.suppress(OSError):
            sink.spool.done(journal)


def send_traces(writer: MlflowWriter | None, diagnostics: Diagnostics,
                timeout: float | None) -> bool:
    """Send batched spans: the due ones (``timeout`` None: a tick) or all, waiting up to it."""
    if writer is None:
        return True
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
        context = _context(item)
        try:
            if context.journal is not None:  # on disk already (durability: disk), with its trace
                spool.release(context.journal)
            else:
                spool.put(context.experiment, context.langchain_run_id, context.run_id,
                          context.plan, spoolable_trace(item))
        except OSError as spool_exc:
            diagnostics.internal_error("spool:trace", spool_exc)
            continue
        spooled += 1
    return spooled


def _context(item: PendingSpans) -> SpoolContext:
    return cast(SpoolContext, item.context)  # the only context this module hands over
