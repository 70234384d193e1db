"""Build one finished MLflow trace per workflow from its (redacted) facts and its run plan.

The spans carry the real start and end times of the workflow, every node, model call
and tool call; their usage and cost are the run plan's numbers, never a second estimate.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlflow.entities import Span, SpanType, Trace, TraceData, TraceInfo, TraceLocation, TraceState
from mlflow.tracing.constant import SpanAttributeKey, TraceMetadataKey, TraceTagKey

from configurable_agents.names import EvalTag, Metric, Tag
from configurable_agents.observability.facts.model import (
    CallFacts,
    ErrorFacts,
    NodeFacts,
    ToolFacts,
    WorkflowFacts,
)
from configurable_agents.observability.facts.serialization import truncate
from configurable_agents.observability.sinks.mlflow.plan import PlanOptions
from configurable_agents.observability.sinks.mlflow.trace_constants import (
    METADATA_CHARS,
    STACKTRACE_CHARS,
    TAG_VALUE_CHARS,
    TRACE_SCHEMA_VERSION_KEY,
)
from configurable_agents.observability.sinks.mlflow.trace_values import (
    dump,
    event,
    llm_inputs,
    llm_outputs,
    make_span_id,
    preview,
    trace_cost,
    trace_usage,
    usage_and_cost_attributes,
)
from configurable_agents.observability.sinks.run_plan import RunPlan


@dataclass(slots=True)
class TraceOptions:
    """What goes into span inputs and outputs (mirrors the run's artifact settings)."""

    log_content: bool = True  # False: structure, timings, tokens and cost only
    max_value_chars: int = 5_000_000

    @classmethod
    def from_plan(cls, options: PlanOptions) -> TraceOptions:
        return cls(log_content=options.log_artifacts, max_value_chars=options.max_artifact_chars)


def trace_id_for(workflow: WorkflowFacts) -> str:
    """The trace id is the LangChain root run id: stable, so a re-export cannot duplicate it."""
    return f"tr-{workflow.run_id.hex}"


# ---- building ----------------------------------------------------------------------------------


def build_trace(
    workflow: WorkflowFacts,
    plan: RunPlan,
    *,
    experiment_id: str,
    run_id: str | None,
    options: TraceOptions | None = None,
) -> Trace:
    """The finished trace of ``workflow``: spans mirror the invocation, numbers mirror ``plan``.

    ``plan`` is the parent RunPlan (from the same redacted facts): its tags become the
    trace's tags, its totals the trace's token usage and cost.
    """
    return _TraceBuilder(workflow, plan, experiment_id, run_id, options or TraceOptions()).build()


class _TraceBuilder:
    def __init__(
        self,
        workflow: WorkflowFacts,
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
        self.spans: list[Span] = []

    # ---- the tree ----

    def build(self) -> Trace:
        workflow = self.workflow
        end_ns = workflow.end_ns
        failed = workflow.status == "FAILED"
        attributes: dict[str, Any] = {
            Tag.WORKFLOW_NAME: workflow.name,
            Tag.LANGCHAIN_RUN_ID: workflow.langchain_run_id,
            Metric.RETRY_COUNT: workflow.totals.retries,
        }
        if workflow.version:
            attributes["workflow_version"] = workflow.version
        if self.run_id:
            attributes["mlflow_run_id"] = self.run_id
        if workflow.interrupted:
            attributes["interrupted"] = True
        inputs = self._content(workflow.inputs)
        outputs = None if failed else self._content(workflow.outputs)
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
            self._add_children(workflow.direct, (), root, end_ns)
        self._add_children(None, workflow.nodes, root, end_ns)
        return Trace(info=self._info(inputs, outputs, end_ns, failed), data=TraceData(self.spans))

    def _add_children(
        self, node: NodeFacts | None, nodes: tuple[NodeFacts, ...], parent: str, end_ns: int
    ) -> None:
        """Model calls, tool calls and subgraph nodes of ``node``, in the order they started."""
        items: list[tuple[int, Any]] = [(n.start_ns, n) for n in nodes]
        if node is not None:
            items += [(c.start_ns, c) for c in node.calls]
            items += [(t.start_ns, t) for t in node.tools]
        for _, item in sorted(items, key=lambda pair: pair[0]):
            if isinstance(item, NodeFacts):
                self._add_node(item, parent, end_ns)
            elif isinstance(item, CallFacts):
                self._add_llm_call(item, parent, end_ns)
            else:
                self._add_tool_call(item, parent, end_ns)

    def _add_node(self, node: NodeFacts, parent: str, parent_end_ns: int) -> None:
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
            events.append(event("retried", end_ns, {"retries": node.retries}))
        span_id = self._add_span(
            key=f"node:{node.run_id.hex}",
            name=node.node_id or "node",
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

    def _add_llm_call(self, call: CallFacts, parent: str, parent_end_ns: int) -> None:
        end_ns = call.end_ns or parent_end_ns
        is_chat = call.operation == "chat"
        attributes: dict[str, Any] = {}
        if is_chat:
            attributes[SpanAttributeKey.MESSAGE_FORMAT] = "langchain"
        if call.request_params:
            attributes["invocation_params"] = dict(call.request_params)
        tools = call.tool_definitions
        if tools and all(isinstance(t, Mapping) for t in tools):
            attributes[SpanAttributeKey.CHAT_TOOLS] = list(tools)
        attributes.update(usage_and_cost_attributes(call))
        events = []
        if call.retry_attempt > 1:
            attributes["retry_attempt"] = call.retry_attempt
            events.append(event("retry", call.start_ns, {"attempt": call.retry_attempt}))
        if call.first_token_ns is not None:
            events.append(event("first_token", call.first_token_ns, {}))
        self._add_span(
            key=f"llm:{call.run_id.hex}",
            name=call.name or call.model or "model",
            parent=parent,
            span_type=SpanType.CHAT_MODEL if is_chat else SpanType.LLM,
            start_ns=call.start_ns,
            end_ns=end_ns,
            inputs=self._content(llm_inputs(call)),
            outputs=None if call.error else self._content(llm_outputs(call)),
            attributes=attributes,
            error=call.error,
            events=events,
        )

    def _add_tool_call(self, tool: ToolFacts, parent: str, parent_end_ns: int) -> None:
        retriever = tool.kind == "retriever"
        inputs = tool.arguments if isinstance(tool.arguments, Mapping) else {
            ("query" if retriever else "input"): tool.arguments
        }
        self._add_span(
            key=f"tool:{tool.run_id.hex}",
            name=tool.name,
            parent=parent,
            span_type=SpanType.RETRIEVER if retriever else SpanType.TOOL,
            start_ns=tool.start_ns,
            end_ns=tool.end_ns or parent_end_ns,
            inputs=self._content(inputs),
            outputs=None if tool.error else self._content(tool.result),
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
        error: ErrorFacts | None,
        events: list[dict[str, Any]] | None = None,
    ) -> str:
        span_id = make_span_id(self.trace_id, key)
        attrs = {
            SpanAttributeKey.REQUEST_ID: self._request_id_attr,
            SpanAttributeKey.SPAN_TYPE: json.dumps(span_type),
        }
        if inputs is not None:
            attrs[SpanAttributeKey.INPUTS] = dump(inputs)
        if outputs is not None:
            attrs[SpanAttributeKey.OUTPUTS] = dump(outputs)
        for k, v in attributes.items():
            attrs[k] = dump(v)
        all_events = list(events or ())
        status = {"code": "STATUS_CODE_OK", "message": ""}
        if error is not None:
            message = f"{error.type}: {error.message}"
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

    @staticmethod
    def _exception_event(error: ErrorFacts, when_ns: int) -> dict[str, Any]:
        return event(
            "exception",
            when_ns,
            {
                "exception.type": error.type,
                "exception.message": error.message,
                "exception.stacktrace": truncate(error.traceback.strip(), STACKTRACE_CHARS)[0],
            },
        )

    # ---- content: JSON-able (already redacted in the facts), bounded ----

    def _content(self, value: Any) -> Any:
        if not self.options.log_content or value is None:
            return None
        text = dump(value)
        if len(text) > self.options.max_value_chars:
            return truncate(text, self.options.max_value_chars)[0]
        return value

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
        usage = trace_usage(workflow)
        if usage:
            metadata[TraceMetadataKey.TOKEN_USAGE] = json.dumps(usage)
        if workflow.totals.llm_calls:
            metadata[TraceMetadataKey.COST] = json.dumps(trace_cost(workflow))
        if model_id := plan.tags.get(EvalTag.LOGGED_MODEL_ID):  # the Agent versions page's link
            metadata[TraceMetadataKey.MODEL_ID] = model_id[:METADATA_CHARS]
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
            request_preview=preview(inputs),
            response_preview=preview(outputs),
            trace_metadata=metadata,
            tags=tags,
        )


# ---- mapping helpers -----------------------------------------------------------------------------

