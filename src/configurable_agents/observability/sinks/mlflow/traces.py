"""One MLflow trace per workflow invocation, built from the records its runs came from.

MLflow 3's GenAI views (the experiment Overview charts, Traces, Sessions) read
*traces*; run comparison reads *runs*. The exporter writes both from the same
finished :class:`WorkflowFacts` and :class:`RunPlan`, so a trace's token usage
and cost are the run's numbers, not a second estimate.

The trace is built after the fact with the real start and end times of every
workflow, node, model call and tool call, then written with the two calls
MLflow's own span exporter makes: ``start_trace`` with the finished ``TraceInfo``
(at once, per workflow: it carries the run link, token usage, cost, session and user,
which MLflow's OTLP ingest cannot take per trace), and ``log_spans``, which is
*batched*: the spans of up to ``TRACE_BATCH_SIZE`` workflows of one experiment go in
one request (one ``/v1/traces`` call on a server, one transaction on a database),
sent when the batch is full, when its oldest trace has waited ``TRACE_BATCH_MAX_WAIT_S``,
or on ``flush``/``close``. Trace and span ids are deterministic, and MLflow upserts
spans by (trace id, span id) and keeps a finalized ``TraceInfo``'s numbers, so a
retried batch stores the same rows again, never a second trace or doubled usage.

We do not use ``MlflowClient.start_trace`` / ``start_span``: those go through
MLflow's process-global tracer provider, which writes to ``mlflow.get_tracking_uri()``
(not the client's URI), asynchronously, subject to global sampling and
``mlflow.tracing.disable()``, and they link a trace to whatever run is *active* in the
calling context, the very bug that mixes up traces and runs under threads (mlflow#15511).
Here the link is explicit: the trace carries its parent run id in ``mlflow.sourceRun``
metadata and the run carries the trace id in the ``configurable_agents.trace_id`` tag.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from mlflow.entities import Span, Trace, TraceData, TraceInfo, TraceLocation
from mlflow.tracing.constant import TraceMetadataKey

from configurable_agents.observability.facts.model import WorkflowFacts
from configurable_agents.observability.sinks.mlflow.client import (
    DEFAULT_REQUEST_TIMEOUT_S,
    build_tracing_client,
)
from configurable_agents.observability.sinks.mlflow.plan import PlanOptions
from configurable_agents.observability.sinks.run_plan import RunPlan

if TYPE_CHECKING:

    from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter

from configurable_agents.observability.sinks.mlflow.trace_build import (
    TraceOptions,
    build_trace,
    trace_id_for,
)
from configurable_agents.observability.sinks.mlflow.trace_constants import (
    EXPERIMENT_KIND_TAG,
    GENAI_EXPERIMENT_KIND,
    SKIPPED_FOR_AUTOLOG,
    SPOOLED_EXPERIMENT,
    TRACE_ID_TAG,
    TRACE_SKIPPED_TAG,
)

# ---- writing -----------------------------------------------------------------------------------


def langchain_autolog_traces_enabled() -> bool:
    """True when ``mlflow.langchain.autolog()`` (log_traces on) would trace the same calls."""
    try:
        from mlflow.utils.autologging_utils import (
            autologging_is_disabled,
            get_autologging_config,
        )
    except ImportError:  # pragma: no cover - part of mlflow
        return False
    if autologging_is_disabled("langchain"):
        return False
    return bool(get_autologging_config("langchain", "log_traces", True))


TRACE_BATCH_SIZE = 32  # workflows whose spans share one log_spans request
TRACE_BATCH_MAX_WAIT_S = 5.0  # as MLflow's own async trace logging (and OTel's batch processor)
BATCH_RETRY_DELAY_S = 0.5


@dataclass(slots=True)
class PendingSpans:
    """One workflow's spans waiting for their batch; ``context`` is the sink's, for a spool."""

    info: TraceInfo
    spans: list[Span]
    since: float
    context: Any = None


BatchFailed = Callable[[list[PendingSpans], BaseException], None]
BatchSent = Callable[[list[PendingSpans]], None]


class TraceWriter:
    """Writes finished traces to one tracking URI (thread-safe; one per MlflowWriter)."""

    def __init__(self, tracking_uri: str, client: Any,
                 request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S) -> None:
        self.client = client  # the writer's RetryingClient (or a plain MlflowClient)
        self.tracing = build_tracing_client(tracking_uri, request_timeout_s)
        self._spans_in_store = True
        self._experiments_checked: set[str] = set()
        self._lock = threading.Lock()
        self._pending: list[PendingSpans] = []
        self._sending = 0  # batches taken out of ``_pending`` and not yet answered
        self._idle = threading.Condition(self._lock)
        self.on_batch_failed: BatchFailed | None = None
        self.on_batch_sent: BatchSent | None = None

    def write(self, trace: Trace) -> str:
        """Store the finished TraceInfo, then its spans at once (replays, ``sync``)."""
        info = self._start_trace(trace)
        self._log_spans([PendingSpans(info, list(trace.data.spans), time.monotonic())])
        return info.trace_id

    def write_batched(self, trace: Trace, context: Any = None) -> str:
        """Store the TraceInfo now; the spans join the batch (sent when full or due).

        The info goes first: its token usage, cost and session are authoritative (MLflow
        marks it finalized, so the later spans never add to them), and it links the run.
        """
        info = self._start_trace(trace)
        now = time.monotonic()
        with self._lock:
            self._pending.append(PendingSpans(info, list(trace.data.spans), now, context))
            due = (len(self._pending) >= TRACE_BATCH_SIZE
                   or now - self._pending[0].since >= TRACE_BATCH_MAX_WAIT_S)
        if due:
            self.send_batches(due_only=False)
        return info.trace_id

    def _start_trace(self, trace: Trace) -> Any:
        """The TraceInfo, re-sent after a lost answer: MLflow upserts a known trace id."""
        retry = getattr(self.client, "retry", None)
        if retry is None:
            return self.tracing.start_trace(trace.info)
        return retry(lambda: self.tracing.start_trace(trace.info))

    def send_batches(self, *, due_only: bool) -> None:
        """Send what waits (only if its oldest trace is due with ``due_only``)."""
        with self._lock:
            if not self._pending or (
                due_only and time.monotonic() - self._pending[0].since < TRACE_BATCH_MAX_WAIT_S
            ):
                return
            taken, self._pending = self._pending, []
            self._sending += 1
        try:
            by_experiment: dict[str, list[PendingSpans]] = {}
            for item in taken:
                by_experiment.setdefault(item.info.experiment_id, []).append(item)
            for group in by_experiment.values():
                for start in range(0, len(group), TRACE_BATCH_SIZE):
                    self._send_group(group[start:start + TRACE_BATCH_SIZE])
        finally:
            with self._lock:
                self._sending -= 1
                self._idle.notify_all()

    def wait_sent(self, timeout: float) -> bool:
        """Send what waits and wait for other threads' batches in flight; True when none."""
        self.send_batches(due_only=False)
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._sending or self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _send_group(self, group: list[PendingSpans]) -> None:
        """One request; retried once (an upsert: same rows again), then handed to the sink."""
        for attempt in range(2):
            try:
                self._log_spans(group)
            except Exception as exc:
                if attempt == 0:
                    time.sleep(BATCH_RETRY_DELAY_S)
                    continue
                if self.on_batch_failed is None:
                    raise
                self.on_batch_failed(group, exc)
            else:
                if self.on_batch_sent is not None:
                    self.on_batch_sent(group)
            return

    def _log_spans(self, group: list[PendingSpans]) -> None:
        from mlflow.exceptions import MlflowException, MlflowNotImplementedException

        if self._spans_in_store:
            spans = [span for item in group for span in item.spans]
            try:
                self.tracing.log_spans(group[0].info.experiment_id, spans)
                return
            except (NotImplementedError, MlflowNotImplementedException):
                self._spans_in_store = False  # e.g. the file store: spans go to artifacts
            except MlflowException as exc:
                if "not supported" not in str(exc).lower():
                    raise
                self._spans_in_store = False  # an older server without span ingestion
        # MLflow's fallback for stores without span storage: the trace data JSON in the
        # trace's artifact folder (no public method does this for a finished trace).
        for item in group:
            self.tracing._upload_trace_data(item.info, TraceData(item.spans))

    def ensure_genai_experiment(self, experiment_id: str) -> None:
        """Tag the experiment ``genai_development`` once, unless its owner chose a kind."""
        if experiment_id in self._experiments_checked:
            return
        with self._lock:
            if experiment_id in self._experiments_checked:
                return
            experiment = self.client.get_experiment(experiment_id)
            if EXPERIMENT_KIND_TAG not in (experiment.tags or {}):
                try:
                    self.client.set_experiment_tag(
                        experiment_id, EXPERIMENT_KIND_TAG, GENAI_EXPERIMENT_KIND
                    )
                except Exception:
                    # Another handler (a judge's, an evaluation's) set it first: on sqlite
                    # the second insert fails on the unique key. Fine if the tag is there.
                    tags = self.client.get_experiment(experiment_id).tags or {}
                    if EXPERIMENT_KIND_TAG not in tags:
                        raise
            self._experiments_checked.add(experiment_id)


_writers: weakref.WeakKeyDictionary[Any, TraceWriter] = weakref.WeakKeyDictionary()
_writers_lock = threading.Lock()


def trace_writer_for(writer: MlflowWriter) -> TraceWriter:
    with _writers_lock:
        trace_writer = _writers.get(writer)
        if trace_writer is None:
            trace_writer = TraceWriter(writer.tracking_uri, writer.client, writer.request_timeout_s)
            _writers[writer] = trace_writer
        return trace_writer


def trace_run_tags(workflow: WorkflowFacts) -> dict[str, str]:
    """The run tags that point at this workflow's trace (known before anything is written).

    Adding them to the parent plan before ``write_tree`` saves :func:`export_trace` one
    backend call per workflow; without that it writes them itself after the trace.
    """
    if langchain_autolog_traces_enabled():
        return {TRACE_SKIPPED_TAG: SKIPPED_FOR_AUTOLOG}
    return {TRACE_ID_TAG: trace_id_for(workflow)}


def export_trace(
    writer: MlflowWriter,
    workflow: WorkflowFacts,
    plan: RunPlan,
    experiment_id: str,
    run_id: str,
    options: PlanOptions,
    context: Any = None,
    *,
    batched: bool = True,
) -> str | None:
    """The exporter's hook: write ``workflow``'s trace linked to ``run_id``; its id, or None.

    The spans go out in a batch with other workflows' (:meth:`TraceWriter.write_batched`);
    ``context`` comes back to the batch-failure handler if that batch cannot be sent.
    Without ``batched`` (synchronous mode: written when the call returns) the spans go at once.
    Skipped (and the run tagged ``configurable_agents.trace_skipped``) when MLflow's
    LangChain autolog is tracing the same calls, so the UI never shows two traces.
    """
    run_tags = trace_run_tags(workflow)
    missing = {k: v for k, v in run_tags.items() if plan.tags.get(k) != v}
    if TRACE_SKIPPED_TAG in run_tags:
        if missing:
            writer.update_tags(run_id, missing)
        return None
    trace_writer = trace_writer_for(writer)
    trace_writer.ensure_genai_experiment(experiment_id)
    trace = build_trace(
        workflow,
        plan,
        experiment_id=experiment_id,
        run_id=run_id,
        options=TraceOptions.from_plan(options),
    )
    trace_id = (trace_writer.write_batched(trace, context) if batched
                else trace_writer.write(trace))
    if missing:
        writer.update_tags(run_id, missing)
    return trace_id


def send_due_traces(writer: MlflowWriter) -> None:
    """Send the waiting spans whose oldest trace is due (an idle worker's tick)."""
    trace_writer_for(writer).send_batches(due_only=True)


def flush_traces(writer: MlflowWriter, timeout: float) -> bool:
    """Send every waiting span batch and wait for those in flight; True when all are out."""
    return trace_writer_for(writer).wait_sent(timeout)


def on_trace_batch_failed(writer: MlflowWriter, handler: BatchFailed) -> None:
    """Who gets a span batch that failed twice (the sink spools its traces for replay)."""
    trace_writer_for(writer).on_batch_failed = handler


def on_trace_batch_sent(writer: MlflowWriter, handler: BatchSent) -> None:
    """Who hears that a span batch landed (the sink removes those workflows' journals)."""
    trace_writer_for(writer).on_batch_sent = handler


def spoolable_trace(item: PendingSpans) -> dict[str, Any]:
    """A pending trace as :func:`trace_for_spool` data, for :func:`export_spooled_trace`."""
    return Trace(info=item.info, data=TraceData(item.spans)).to_dict()


def trace_for_spool(
    workflow: WorkflowFacts, plan: RunPlan, options: PlanOptions
) -> dict[str, Any]:
    """``workflow``'s finished trace as JSON-ready data, for a workflow that is being spooled.

    Built now, while the facts exist (the spool keeps only the run plan); the
    experiment and the run it links to are filled in by :func:`export_spooled_trace` once the
    replay has written the runs.
    """
    trace = build_trace(workflow, plan, experiment_id=SPOOLED_EXPERIMENT, run_id=None,
                        options=TraceOptions.from_plan(options))
    return trace.to_dict()


def export_spooled_trace(
    writer: MlflowWriter, data: Mapping[str, Any], experiment_id: str, run_id: str
) -> str:
    """Write a trace kept by :func:`trace_for_spool`, linked to the run the replay wrote.

    Idempotent like the runs: the trace id is the LangChain root run id, so a replay that is
    interrupted and run again stores the same trace again, not a second one.
    """
    trace = Trace.from_dict(dict(data))
    trace.info.trace_location = TraceLocation.from_experiment_id(experiment_id)
    trace.info.trace_metadata[TraceMetadataKey.SOURCE_RUN] = run_id
    trace_writer = trace_writer_for(writer)
    trace_writer.ensure_genai_experiment(experiment_id)
    return trace_writer.write(trace)


def langchain_run_id_of(trace: Trace) -> UUID:
    """Inverse of :func:`trace_id_for` (for tools and tests)."""
    return UUID(trace.info.trace_id.removeprefix("tr-"))
