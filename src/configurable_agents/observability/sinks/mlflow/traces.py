"""One MLflow trace per workflow invocation, built from the records its runs came from.

MLflow 3's GenAI views (the experiment Overview charts, Traces, Sessions) read
*traces*; run comparison reads *runs*. The exporter writes both from the same
finished :class:`WorkflowRecord` and :class:`RunPlan`, so a trace's token usage
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

import base64
import hashlib
import json
import threading
import traceback
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.messages.utils import convert_to_openai_messages
from mlflow.entities import Span, SpanType, Trace, TraceData, TraceInfo, TraceLocation, TraceState
from mlflow.tracing.constant import SpanAttributeKey, TraceMetadataKey, TraceTagKey

from configurable_agents.observability.capture.records import (
    LLMCallRecord,
    NodeRecord,
    ToolCallRecord,
    WorkflowRecord,
)
from configurable_agents.observability.facts.assemble import AssembleOptions, CallFacts, RunPlan
from configurable_agents.observability.facts.serialization import to_jsonable, truncate

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter

# Run tags we add: run -> trace link, and why a run has no trace of ours.
TRACE_ID_TAG = "configurable_agents.trace_id"
SPOOLED_EXPERIMENT = "0"  # placeholder location of a spooled trace until it is replayed
TRACE_SKIPPED_TAG = "configurable_agents.trace_skipped"
SKIPPED_FOR_AUTOLOG = "mlflow.langchain.autolog"

# The experiment tag MLflow's UI reads to pick its GenAI layout (Overview, Traces,
# Sessions, plus a "Training runs" tab when the experiment has runs).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
GENAI_EXPERIMENT_KIND = "genai_development"
EXPERIMENT_TAGS = {EXPERIMENT_KIND_TAG: GENAI_EXPERIMENT_KIND}

# MLflow's limits: previews 1000 chars (OSS), metadata values 250, trace tag values 4096.
PREVIEW_CHARS = 1000
METADATA_CHARS = 250
TAG_VALUE_CHARS = 4096
STACKTRACE_CHARS = 20_000
TRACE_SCHEMA_VERSION_KEY = "mlflow.trace_schema.version"

@dataclass(slots=True)
class TraceOptions:
    """What goes into span inputs and outputs (mirrors the run's artifact settings)."""

    redact: Callable[[str], str] | None = None
    log_content: bool = True  # False: structure, timings, tokens and cost only
    max_value_chars: int = 5_000_000

    @classmethod
    def from_assemble(cls, options: AssembleOptions) -> TraceOptions:
        return cls(
            redact=options.redact,
            log_content=options.log_artifacts,
            max_value_chars=options.max_artifact_chars,
        )


def trace_id_for(workflow: WorkflowRecord) -> str:
    """The trace id is the LangChain root run id: stable, so a re-export cannot duplicate it."""
    return f"tr-{workflow.run_id.hex}"


# ---- building ----------------------------------------------------------------------------------


def build_trace(
    workflow: WorkflowRecord,
    plan: RunPlan,
    *,
    experiment_id: str,
    run_id: str | None,
    options: TraceOptions | None = None,
) -> Trace:
    """The finished trace of ``workflow``: spans mirror the invocation, numbers mirror ``plan``.

    ``plan`` is the parent RunPlan the assembler built (already redacted): its tags become
    the trace's tags, its totals the trace's token usage and cost, its CallFacts the usage
    and cost of each model span.
    """
    return _TraceBuilder(workflow, plan, experiment_id, run_id, options or TraceOptions()).build()


class _TraceBuilder:
    def __init__(
        self,
        workflow: WorkflowRecord,
        plan: RunPlan,
        experiment_id: str,
        run_id: str | None,
        options: TraceOptions,
    ) -> None:
        self.workflow = workflow
        self.plan = plan
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.options = options
        self.trace_id = trace_id_for(workflow)
        self._otel_trace_id = base64.b64encode(workflow.run_id.int.to_bytes(16, "big")).decode()
        self._request_id_attr = json.dumps(self.trace_id)
        self._facts = {id(f.call): f for f in plan.calls}
        self.spans: list[Span] = []

    # ---- the tree ----

    def build(self) -> Trace:
        workflow = self.workflow
        end_ns = workflow.end_ns or workflow.start_ns
        failed = workflow.status == "FAILED"
        attributes: dict[str, Any] = {
            "workflow_name": workflow.name,
            "langchain_run_id": str(workflow.run_id),
            "retry_count": self.plan.metrics.get("retry_count", 0),
        }
        if workflow.version:
            attributes["workflow_version"] = workflow.version
        if self.run_id:
            attributes["mlflow_run_id"] = self.run_id
        if workflow.interrupted:
            attributes["interrupted"] = True
        inputs = self._content(workflow.inputs)
        outputs = None if failed else self._content(_root_outputs(workflow))
        root = self._add_span(
            key=f"workflow:{workflow.run_id.hex}",
            name=workflow.name,
            parent=None,
            span_type=SpanType.CHAIN,
            start_ns=workflow.start_ns,
            end_ns=end_ns,
            inputs=inputs,
            outputs=outputs,
            attributes=attributes,
            error=workflow.error if failed else None,
        )
        if workflow.direct is not None:
            self._add_children(workflow.direct, [], root, end_ns)
        self._add_children(None, workflow.nodes, root, end_ns)
        return Trace(info=self._info(inputs, outputs, end_ns, failed), data=TraceData(self.spans))

    def _add_children(
        self, node: NodeRecord | None, nodes: list[NodeRecord], parent: str, end_ns: int
    ) -> None:
        """Model calls, tool calls and subgraph nodes of ``node``, in the order they started."""
        items: list[tuple[int, Any]] = [(n.start_ns, n) for n in nodes]
        if node is not None:
            items += [(c.start_ns, c) for c in node.llm_calls]
            items += [(t.start_ns, t) for t in node.tool_calls]
        for _, item in sorted(items, key=lambda pair: pair[0]):
            if isinstance(item, NodeRecord):
                self._add_node(item, parent, end_ns)
            elif isinstance(item, LLMCallRecord):
                self._add_llm_call(item, parent, end_ns)
            else:
                self._add_tool_call(item, parent, end_ns)

    def _add_node(self, node: NodeRecord, parent: str, parent_end_ns: int) -> None:
        end_ns = node.end_ns or parent_end_ns
        failed = node.status == "FAILED"
        attributes: dict[str, Any] = {"node_id": node.node_id, "retries": node.retries}
        if node.step is not None:
            attributes["langgraph_step"] = node.step
        if node.checkpoint_ns:
            attributes["langgraph_checkpoint_ns"] = node.checkpoint_ns
        if node.status == "INTERRUPTED":
            attributes["interrupted"] = True
        events = []
        if node.retries:
            # LangGraph RetryPolicy reruns keep no per-attempt times; the failed attempts'
            # model and tool calls stay visible as ERROR child spans.
            events.append(_event("retried", end_ns, {"retries": node.retries}))
        span_id = self._add_span(
            key=f"node:{node.run_id.hex}",
            name=node.node_id,
            parent=parent,
            span_type=SpanType.CHAIN,
            start_ns=node.start_ns,
            end_ns=end_ns,
            inputs=self._content(node.inputs),
            outputs=None if failed else self._content(node.outputs),
            attributes=attributes,
            error=node.error if failed else None,
            events=events,
        )
        self._add_children(node, node.children, span_id, end_ns)

    def _add_llm_call(self, call: LLMCallRecord, parent: str, parent_end_ns: int) -> None:
        facts = self._facts.get(id(call))
        end_ns = call.end_ns or parent_end_ns
        is_chat = call.messages is not None
        attributes: dict[str, Any] = {}
        if is_chat:
            attributes[SpanAttributeKey.MESSAGE_FORMAT] = "langchain"
        params = {k: v for k, v in (call.invocation_params or {}).items() if k != "tools"}
        if params:
            attributes["invocation_params"] = self._redacted(to_jsonable(params))
        tools = (call.invocation_params or {}).get("tools")
        if isinstance(tools, list) and tools and all(isinstance(t, Mapping) for t in tools):
            attributes[SpanAttributeKey.CHAT_TOOLS] = self._redacted(to_jsonable(tools))
        if facts is not None:
            attributes.update(_usage_and_cost_attributes(facts))
        events = []
        if call.retry_attempt > 1:
            attributes["retry_attempt"] = call.retry_attempt
            events.append(_event("retry", call.start_ns, {"attempt": call.retry_attempt}))
        if call.first_token_ns is not None:
            events.append(_event("first_token", call.first_token_ns, {}))
        self._add_span(
            key=f"llm:{call.run_id.hex}",
            name=call.name or (facts.model if facts and facts.model else "model"),
            parent=parent,
            span_type=SpanType.CHAT_MODEL if is_chat else SpanType.LLM,
            start_ns=call.start_ns,
            end_ns=end_ns,
            inputs=self._content(_llm_inputs(call)),
            outputs=None if call.error else self._content(_llm_outputs(call, facts)),
            attributes=attributes,
            error=call.error,
            events=events,
        )

    def _add_tool_call(self, tool: ToolCallRecord, parent: str, parent_end_ns: int) -> None:
        retriever = tool.kind == "retriever"
        inputs = tool.input if isinstance(tool.input, Mapping) else {
            ("query" if retriever else "input"): tool.input
        }
        self._add_span(
            key=f"tool:{tool.run_id.hex}",
            name=tool.name,
            parent=parent,
            span_type=SpanType.RETRIEVER if retriever else SpanType.TOOL,
            start_ns=tool.start_ns,
            end_ns=tool.end_ns or parent_end_ns,
            inputs=self._content(inputs),
            outputs=None if tool.error else self._content(_tool_output(tool.output)),
            attributes={},
            error=tool.error,
        )

    # ---- one span ----

    def _add_span(
        self,
        *,
        key: str,
        name: str,
        parent: str | None,
        span_type: str,
        start_ns: int,
        end_ns: int,
        inputs: Any,
        outputs: Any,
        attributes: Mapping[str, Any],
        error: BaseException | None,
        events: list[dict[str, Any]] | None = None,
    ) -> str:
        span_id = _span_id(self.trace_id, key)
        attrs = {
            SpanAttributeKey.REQUEST_ID: self._request_id_attr,
            SpanAttributeKey.SPAN_TYPE: json.dumps(span_type),
        }
        if inputs is not None:
            attrs[SpanAttributeKey.INPUTS] = _dump(inputs)
        if outputs is not None:
            attrs[SpanAttributeKey.OUTPUTS] = _dump(outputs)
        for k, v in attributes.items():
            attrs[k] = _dump(v)
        all_events = list(events or ())
        status = {"code": "STATUS_CODE_OK", "message": ""}
        if error is not None:
            message = self._text(f"{type(error).__name__}: {error}")
            status = {"code": "STATUS_CODE_ERROR", "message": message}
            all_events.append(self._exception_event(error, end_ns))
        self.spans.append(
            Span.from_dict(
                {
                    "trace_id": self._otel_trace_id,
                    "span_id": span_id,
                    "parent_span_id": parent,
                    "name": name,
                    "start_time_unix_nano": start_ns,
                    "end_time_unix_nano": max(end_ns, start_ns),
                    "events": all_events,
                    "status": status,
                    "attributes": attrs,
                }
            )
        )
        return span_id

    def _exception_event(self, error: BaseException, when_ns: int) -> dict[str, Any]:
        try:
            stack = "".join(traceback.format_exception(error)).strip()
        except Exception:
            stack = repr(error)
        return _event(
            "exception",
            when_ns,
            {
                "exception.type": type(error).__name__,
                "exception.message": self._text(str(error)),
                "exception.stacktrace": self._text(truncate(stack, STACKTRACE_CHARS)[0]),
            },
        )

    # ---- content: JSON-able, redacted, bounded ----

    def _content(self, value: Any) -> Any:
        if not self.options.log_content or value is None:
            return None
        data = self._redacted(to_jsonable(value))
        text = _dump(data)
        if len(text) > self.options.max_value_chars:
            return truncate(text, self.options.max_value_chars)[0]
        return data

    def _redacted(self, value: Any) -> Any:
        redact = self.options.redact
        return value if redact is None else _redact_tree(value, redact)

    def _text(self, text: str) -> str:
        redact = self.options.redact
        return text if redact is None else redact(text)

    # ---- the trace info ----

    def _info(self, inputs: Any, outputs: Any, end_ns: int, failed: bool) -> TraceInfo:
        plan, workflow = self.plan, self.workflow
        metadata = {TRACE_SCHEMA_VERSION_KEY: "3"}
        if self.run_id:
            metadata[TraceMetadataKey.SOURCE_RUN] = self.run_id
        session = plan.tags.get("thread_id") or plan.tags.get("session_id")
        if session:
            metadata[TraceMetadataKey.TRACE_SESSION] = session[:METADATA_CHARS]
        user = plan.tags.get("user_id")
        if user:
            metadata[TraceMetadataKey.TRACE_USER] = user[:METADATA_CHARS]
        usage = _trace_usage(plan)
        if usage:
            metadata[TraceMetadataKey.TOKEN_USAGE] = json.dumps(usage)
        if plan.calls:
            metadata[TraceMetadataKey.COST] = json.dumps(_trace_cost(plan))
        tags = {
            k: v[:TAG_VALUE_CHARS] for k, v in plan.tags.items() if not k.startswith("mlflow.")
        }
        tags[TraceTagKey.TRACE_NAME] = workflow.name[:TAG_VALUE_CHARS]
        return TraceInfo(
            trace_id=self.trace_id,
            trace_location=TraceLocation.from_experiment_id(self.experiment_id),
            request_time=workflow.start_ns // 1_000_000,
            execution_duration=max(0, end_ns - workflow.start_ns) // 1_000_000,
            state=TraceState.ERROR if failed else TraceState.OK,
            request_preview=_preview(inputs),
            response_preview=_preview(outputs),
            trace_metadata=metadata,
            tags=tags,
        )


# ---- mapping helpers -----------------------------------------------------------------------------


def _span_id(trace_id: str, key: str) -> str:
    """Deterministic, non-zero 64-bit span id (base64, as ``Span.from_dict`` expects)."""
    digest = hashlib.blake2b(f"{trace_id}/{key}".encode(), digest_size=8).digest()
    if digest == b"\0" * 8:
        digest = b"\0" * 7 + b"\1"
    return base64.b64encode(digest).decode()


def _event(name: str, when_ns: int, attributes: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "time_unix_nano": when_ns, "attributes": attributes}


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _redact_tree(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redact_tree(v, redact) for v in value]
    if isinstance(value, dict):
        return {k: _redact_tree(v, redact) for k, v in value.items()}
    return value


def _preview(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else _dump(value)
    return text[:PREVIEW_CHARS]


def _root_outputs(workflow: WorkflowRecord) -> Any:
    outputs = workflow.outputs
    if workflow.kind == "llm" and hasattr(outputs, "generations"):
        return _generations_output(outputs)
    return outputs


def _llm_inputs(call: LLMCallRecord) -> Any:
    """Chat inputs in the OpenAI message shape MLflow's chat view renders."""
    if call.messages is not None:
        batches = [convert_to_openai_messages(batch) for batch in call.messages]
        if len(batches) == 1:
            return {"messages": batches[0]}
        return [{"messages": batch} for batch in batches]
    return {"prompts": list(call.prompts or [])}


def _generations_output(response: Any) -> Any:
    outputs = []
    for generations in getattr(response, "generations", None) or []:
        choices = []
        for generation in generations:
            message = getattr(generation, "message", None)
            info = getattr(generation, "generation_info", None) or {}
            if message is not None:
                choices.append({"message": convert_to_openai_messages(message),
                                "finish_reason": info.get("finish_reason")})
            else:
                choices.append({"text": getattr(generation, "text", "")})
        outputs.append({"choices": choices})
    if len(outputs) == 1:
        return outputs[0]
    return outputs or None


def _llm_outputs(call: LLMCallRecord, facts: CallFacts | None) -> Any:
    if call.response is not None:
        output = _generations_output(call.response)
        if output is not None:
            return output
    if facts is not None and facts.response_text:
        return {"text": facts.response_text}
    return None


def _tool_output(output: Any) -> Any:
    """A tool's ToolMessage is shown as its content; documents and other values as they are."""
    if getattr(output, "type", None) == "tool" and hasattr(output, "content"):
        return output.content
    return output


def _call_cost(facts: CallFacts) -> dict[str, float]:
    """MLflow's ``mlflow.llm.cost`` shape; the input/output split when the pricing has one."""
    breakdown = getattr(facts, "breakdown", None)
    if breakdown is not None:
        return {
            "input_cost": breakdown.input + breakdown.cache_read + breakdown.cache_write,
            "output_cost": breakdown.output + breakdown.reasoning,
            "total_cost": facts.cost_usd,
        }
    if facts.cost_usd == 0:
        return {"input_cost": 0.0, "output_cost": 0.0, "total_cost": 0.0}
    return {"total_cost": facts.cost_usd}


def _usage_and_cost_attributes(facts: CallFacts) -> dict[str, Any]:
    """Model, usage and cost in MLflow's attribute names, so MLflow aggregates them itself.

    The cost is always ours (an unpriced call is 0 plus a marker, exactly as on the run):
    when ``mlflow.llm.cost`` is absent MLflow would price the span from its own catalog.
    """
    attributes: dict[str, Any] = {}
    if facts.model:
        attributes[SpanAttributeKey.MODEL] = facts.model
    if facts.provider:
        attributes[SpanAttributeKey.MODEL_PROVIDER] = str(facts.provider)
    usage = facts.usage
    if not usage.is_empty:
        chat_usage = {
            "input_tokens": usage.input,
            "output_tokens": usage.output,
            "total_tokens": usage.total or usage.input + usage.output,
        }
        if usage.cache_read:
            chat_usage["cache_read_input_tokens"] = usage.cache_read
        if usage.cache_write:
            chat_usage["cache_creation_input_tokens"] = usage.cache_write
        attributes[SpanAttributeKey.CHAT_USAGE] = chat_usage
        attributes[SpanAttributeKey.LLM_COST] = _call_cost(facts)
        if usage.reasoning:
            attributes["reasoning_tokens"] = usage.reasoning
        if usage.estimated:
            attributes["tokens_estimated"] = usage.method or True
        if usage.llm_cache_hit:
            attributes["llm_cache_hit"] = True
    attributes["cost_source"] = facts.cost_source
    if not facts.priced:
        attributes["pricing"] = "unknown"
    return attributes


def _trace_usage(plan: RunPlan) -> dict[str, int]:
    metrics = plan.metrics
    if not any(not f.usage.is_empty for f in plan.calls):
        return {}
    usage = {
        "input_tokens": int(metrics.get("total_input_tokens", 0)),
        "output_tokens": int(metrics.get("total_output_tokens", 0)),
        "total_tokens": int(metrics.get("total_tokens", 0)),
    }
    if metrics.get("total_cached_input_tokens"):
        usage["cache_read_input_tokens"] = int(metrics["total_cached_input_tokens"])
    if metrics.get("total_cache_write_tokens"):
        usage["cache_creation_input_tokens"] = int(metrics["total_cache_write_tokens"])
    return usage


def _trace_cost(plan: RunPlan) -> dict[str, float]:
    """The run's ``total_cost_usd``, split into input/output only when every call has a split."""
    total = float(plan.metrics.get("total_cost_usd", 0.0))
    parts = [_call_cost(f) for f in plan.calls if not f.usage.is_empty]
    if parts and all("input_cost" in p for p in parts):
        return {
            "input_cost": sum(p["input_cost"] for p in parts),
            "output_cost": sum(p["output_cost"] for p in parts),
            "total_cost": total,
        }
    return {"total_cost": total}


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
                self.client.set_experiment_tag(
                    experiment_id, EXPERIMENT_KIND_TAG, GENAI_EXPERIMENT_KIND
                )
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


def trace_run_tags(workflow: WorkflowRecord) -> dict[str, str]:
    """The run tags that point at this workflow's trace (known before anything is written).

    Adding them to the parent plan before ``write_tree`` saves :func:`export_trace` one
    backend call per workflow; without that it writes them itself after the trace.
    """
    if langchain_autolog_traces_enabled():
        return {TRACE_SKIPPED_TAG: SKIPPED_FOR_AUTOLOG}
    return {TRACE_ID_TAG: trace_id_for(workflow)}


def export_trace(
    writer: MlflowWriter,
    workflow: WorkflowRecord,
    plan: RunPlan,
    experiment_id: str,
    run_id: str,
    options: AssembleOptions,
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
        options=TraceOptions.from_assemble(options),
    )
    trace_id = trace_writer.write(trace)
    if missing:
        writer.update_tags(run_id, missing)
    return trace_id


def trace_for_spool(
    workflow: WorkflowRecord, plan: RunPlan, options: AssembleOptions
) -> dict[str, Any]:
    """``workflow``'s finished trace as JSON-ready data, for a workflow that is being spooled.

    Built now, while the records exist (the spool keeps only the assembled plan); the
    experiment and the run it links to are filled in by :func:`export_spooled_trace` once the
    replay has written the runs.
    """
    trace = build_trace(workflow, plan, experiment_id=SPOOLED_EXPERIMENT, run_id=None,
                        options=TraceOptions.from_assemble(options))
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
