"""One MLflow trace per workflow invocation, built from the records its runs came from.

MLflow 3's GenAI views (the experiment Overview charts, Traces, Sessions) read
*traces*; run comparison reads *runs*. The exporter writes both from the same
finished :class:`WorkflowFacts` and :class:`RunPlan`, so a trace's token usage
and cost are the run's numbers, not a second estimate.

The trace is built after the fact with the real start and end times of every
workflow, node, model call and tool call, then written with the two calls
MLflow's own span exporter makes (``log_spans``, then ``start_trace`` with the
finished ``TraceInfo``). We do not use ``MlflowClient.start_trace`` /
``start_span``: those go through MLflow's process-global tracer provider, which
writes to ``mlflow.get_tracking_uri()`` (not the client's URI), asynchronously,
subject to global sampling and ``mlflow.tracing.disable()``, and they link a
trace to whatever run is *active* in the calling context, the very bug that
mixes up traces and runs under threads (mlflow#15511). Here the link is explicit:
the trace carries its parent run id in ``mlflow.sourceRun`` metadata and the run
carries the trace id in the ``configurable_agents.trace_id`` tag.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from mlflow.entities import Trace, TraceLocation
from mlflow.tracing.constant import TraceMetadataKey

from configurable_agents.observability.facts.model import WorkflowFacts
from configurable_agents.observability.sinks.mlflow.plan import PlanOptions
from configurable_agents.observability.sinks.run_plan import RunPlan

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

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


class TraceWriter:
    """Writes finished traces to one tracking URI (thread-safe; one per MlflowWriter)."""

    def __init__(self, tracking_uri: str, client: MlflowClient) -> None:
        from mlflow.tracing.client import TracingClient

        self.client = client
        self.tracing = TracingClient(tracking_uri)
        self._spans_in_store = True
        self._experiments_checked: set[str] = set()
        self._lock = threading.Lock()

    def write(self, trace: Trace) -> str:
        """Store the finished TraceInfo, then its spans (MLflow's own two calls).

        The info goes first: its token usage, cost and session are authoritative, and
        inserting it into an empty slot is cheaper than merging after ``log_spans``.
        """
        from mlflow.exceptions import MlflowException, MlflowNotImplementedException

        info = self.tracing.start_trace(trace.info)
        if self._spans_in_store:
            try:
                self.tracing.log_spans(trace.info.experiment_id, trace.data.spans)
                return info.trace_id
            except (NotImplementedError, MlflowNotImplementedException):
                self._spans_in_store = False  # e.g. the file store: spans go to artifacts
            except MlflowException as exc:
                if "not supported" not in str(exc).lower():
                    raise
                self._spans_in_store = False  # an older server without span ingestion
        # MLflow's fallback for stores without span storage: the trace data JSON in the
        # trace's artifact folder (no public method does this for a finished trace).
        self.tracing._upload_trace_data(info, trace.data)
        return info.trace_id

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
            trace_writer = TraceWriter(writer.tracking_uri, writer.client)
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
) -> str | None:
    """The exporter's hook: write ``workflow``'s trace linked to ``run_id``; its id, or None.

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
    trace_id = trace_writer.write(trace)
    if missing:
        writer.update_tags(run_id, missing)
    return trace_id


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
