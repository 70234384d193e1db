"""WorkflowFacts -> OpenTelemetry spans with the real start and end times, after the fact.

Runs on the sink's worker thread. Parents are explicit (``context=`` on every
``start_span``), never taken from the worker's current context, so parallel branches,
threads and ``asyncio.gather`` invocations keep their own trees; the invocation span's
parent is the app span captured on the caller thread at workflow start.

Tree: ``invoke_workflow {workflow}`` -> ``invoke_agent {node}`` (subgraph nodes nest)
-> ``chat {model}`` / ``execute_tool {tool}``; model and tool calls made outside any
node hang from the invocation span. Usage, cost and totals come from the same fact tree
the MLflow sink encodes, so OpenTelemetry and MLflow agree.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, Tracer

from configurable_agents.names import Metric, Tag
from configurable_agents.observability.facts.model import (
    CallFacts,
    ErrorFacts,
    NodeFacts,
    ToolFacts,
    WorkflowFacts,
)
from configurable_agents.observability.sinks.otel import content
from configurable_agents.observability.sinks.otel import conventions as cv

# At most this many caller attributes per span, and never more than the span limit leaves.
MAX_CALLER_ATTRIBUTES = 32


class SpanBuilder:
    """Emits one workflow's spans on ``tracer``; returns how many it ended."""

    def __init__(self, tracer: Tracer, *, capture_content: bool,
                 max_attributes: int | None = None) -> None:
        self.tracer = tracer
        self.capture_content = capture_content
        # The provider's span attribute limit: the SDK evicts the *oldest* attribute past it
        # (our operation name, workflow name...) and logs a warning per eviction, so we
        # never reach it: caller attributes get what our own attributes leave.
        self.max_attributes = max_attributes
        self._conversation: str | None = None
        self._user: str | None = None

    def emit(self, facts: WorkflowFacts, parent: SpanContext | None) -> int:
        # A conversation: LangGraph's thread_id, else the app's session_id metadata.
        self._conversation = (facts.attribution.get(Tag.THREAD_ID)
                              or facts.attribution.get(Tag.SESSION_ID))
        self._user = facts.attribution.get(Tag.USER_ID)
        context = (
            trace.set_span_in_context(trace.NonRecordingSpan(parent), Context())
            if parent is not None and parent.is_valid
            else Context()  # explicit: never the worker thread's own context
        )
        root = self.tracer.start_span(
            f"{cv.Operation.INVOKE_WORKFLOW} {facts.name}",
            context=context,
            kind=SpanKind.INTERNAL,
            start_time=facts.start_ns,
            attributes=self._common(cv.Operation.INVOKE_WORKFLOW),
        )
        root.set_attribute(cv.WORKFLOW_NAME, facts.name)
        root.set_attributes(workflow_attributes(facts))
        if facts.interrupted:
            root.add_event(cv.INTERRUPT_EVENT, timestamp=facts.end_ns)
        self._status(root, facts.error)
        self._set_caller(root, caller_attributes(facts))
        count = 1
        root_context = trace.set_span_in_context(root, Context())
        if facts.direct is not None:
            count += self._calls(root_context, facts.direct)
        for child in facts.nodes:
            count += self._node(root_context, child, facts)
        root.end(end_time=facts.end_ns)
        return count

    # ---- per kind ---------------------------------------------------------------------------

    def _node(self, parent: Context, node: NodeFacts, facts: WorkflowFacts) -> int:
        span = self.tracer.start_span(
            f"{cv.Operation.INVOKE_AGENT} {node.node_id}",
            context=parent,
            kind=SpanKind.INTERNAL,
            start_time=node.start_ns,
            attributes=self._common(cv.Operation.INVOKE_AGENT),
        )
        span.set_attribute(cv.AGENT_NAME, node.node_id or "")
        if node.step is not None:
            span.set_attribute(cv.STEP, int(node.step))
        span.set_attributes(node_attributes(node, facts))
        self._status(span, node.error)
        context = trace.set_span_in_context(span, Context())
        count = 1 + self._calls(context, node)
        for child in node.children:
            count += self._node(context, child, facts)
        span.end(end_time=node.end_ns or node.start_ns)
        return count

    def _calls(self, parent: Context, node: NodeFacts) -> int:
        for call in node.calls:
            self._model_call(parent, call)
        for tool in node.tools:
            self._tool_call(parent, tool)
        return len(node.calls) + len(node.tools)

    def _model_call(self, parent: Context, call: CallFacts) -> None:
        operation = (
            cv.Operation.CHAT if call.operation == "chat" else cv.Operation.TEXT_COMPLETION
        )
        span = self.tracer.start_span(
            f"{operation} {call.model}" if call.model else operation,
            context=parent,
            kind=SpanKind.CLIENT,
            start_time=call.start_ns,
            attributes=self._common(operation),
        )
        attributes: dict[str, Any] = {}
        provider = cv.provider_name(call.provider)
        if provider:
            attributes[cv.PROVIDER_NAME] = provider
        if call.model:
            attributes[cv.REQUEST_MODEL] = call.model
        if call.response_model:
            attributes[cv.RESPONSE_MODEL] = call.response_model
        if call.temperature is not None:
            attributes[cv.REQUEST_TEMPERATURE] = call.temperature
        if call.max_tokens is not None:
            attributes[cv.REQUEST_MAX_TOKENS] = call.max_tokens
        usage = call.usage
        if not usage.is_empty:
            attributes[cv.USAGE_INPUT_TOKENS] = usage.input
            attributes[cv.USAGE_OUTPUT_TOKENS] = usage.output
            if usage.cache_read:
                attributes[cv.USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read
            if usage.cache_write:
                attributes[cv.USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write
            if usage.reasoning:
                attributes[cv.USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning
            attributes[cv.ours(Metric.INPUT_TOKENS)] = usage.input
            attributes[cv.ours(Metric.OUTPUT_TOKENS)] = usage.output
        if usage.estimated:
            attributes[cv.TOKENS_ESTIMATED] = True
        if usage.llm_cache_hit:
            attributes[cv.LLM_CACHE_HIT] = True
        attributes[cv.COST_USD] = float(call.cost_usd)
        attributes[cv.PRICED] = bool(call.priced)
        attributes[cv.COST_SOURCE] = call.cost_source
        if call.retry_attempt > 1:
            attributes[cv.RETRY_ATTEMPT] = call.retry_attempt
        if call.first_token_ns is not None:
            ttfc_s = (call.first_token_ns - call.start_ns) / 1e9
            attributes[cv.RESPONSE_TIME_TO_FIRST_CHUNK] = ttfc_s
        if call.finish_reasons:
            attributes[cv.RESPONSE_FINISH_REASONS] = list(call.finish_reasons)
        if call.response_id:
            attributes[cv.RESPONSE_ID] = call.response_id
        if self.capture_content:
            attributes[cv.INPUT_MESSAGES] = content.input_messages(call)
            if call.error is None:
                attributes[cv.OUTPUT_MESSAGES] = content.output_messages(call)
        span.set_attributes(attributes)
        self._status(span, call.error)
        span.end(end_time=call.end_ns or call.start_ns)

    def _tool_call(self, parent: Context, tool: ToolFacts) -> None:
        retriever = tool.kind == "retriever"
        operation = cv.Operation.RETRIEVAL if retriever else cv.Operation.EXECUTE_TOOL
        span = self.tracer.start_span(
            f"{operation} {tool.name}",
            context=parent,
            kind=SpanKind.INTERNAL,
            start_time=tool.start_ns,
            attributes=self._common(operation),
        )
        span.set_attribute(cv.TOOL_NAME, tool.name)
        if not retriever:
            span.set_attribute(cv.TOOL_TYPE, "function")
        if tool.call_id:
            span.set_attribute(cv.TOOL_CALL_ID, tool.call_id)
        if self.capture_content:
            span.set_attribute(cv.TOOL_CALL_ARGUMENTS, content.payload(tool.arguments))
            if tool.error is None and tool.result is not None:
                span.set_attribute(cv.TOOL_CALL_RESULT, content.payload(tool.result))
        self._status(span, tool.error)
        span.end(end_time=tool.end_ns or tool.start_ns)

    # ---- shared -----------------------------------------------------------------------------

    def _common(self, operation: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {cv.OPERATION_NAME: operation}
        if self._conversation:
            attributes[cv.CONVERSATION_ID] = self._conversation
        if self._user:
            attributes[cv.USER_ID] = self._user
        return attributes

    def _set_caller(self, span: Span, caller: dict[str, Any]) -> None:
        """Caller attributes last, within what the span limit leaves after ours."""
        if not caller:
            return
        budget = MAX_CALLER_ATTRIBUTES
        if self.max_attributes is not None:
            used = len(getattr(span, "attributes", None) or {})
            budget = min(budget, self.max_attributes - used - 1)  # 1: the dropped count
        budget = max(budget, 0)
        keys = sorted(caller)
        span.set_attributes({key: caller[key] for key in keys[:budget]})
        if len(keys) > budget:
            span.set_attribute(cv.CALLER_ATTRIBUTES_DROPPED, len(keys) - budget)

    @staticmethod
    def _status(span: Span, error: ErrorFacts | None) -> None:
        if error is None:
            return
        text = content.clean(error.message)
        span.set_attribute(cv.ERROR_TYPE, error.qualname)
        span.set_status(Status(StatusCode.ERROR, f"{error.type}: {text}"[:1000]))


def workflow_attributes(facts: WorkflowFacts) -> dict[str, Any]:
    """The ADR-011 totals, identity and attribution of the invocation, namespaced."""
    totals, usage = facts.totals, facts.totals.usage
    attributes: dict[str, Any] = {
        cv.ours(k): float(v) for k, v in {
            Metric.DURATION_SECONDS: totals.duration_s,
            Metric.TOTAL_INPUT_TOKENS: usage.input,
            Metric.TOTAL_OUTPUT_TOKENS: usage.output,
            Metric.TOTAL_COST_USD: totals.cost_usd,
            Metric.NODE_COUNT: totals.node_count,
            Metric.RETRY_COUNT: totals.retries,
            Metric.FALLBACK_COUNT: totals.fallbacks,
            Metric.STATUS: 1 if facts.status in ("FINISHED", "INTERRUPTED") else 0,
            Metric.LLM_CALLS: totals.llm_calls,
            Metric.TOTAL_CACHED_INPUT_TOKENS: usage.cache_read,
            Metric.TOTAL_CACHE_WRITE_TOKENS: usage.cache_write,
            Metric.TOTAL_REASONING_TOKENS: usage.reasoning,
            Metric.TOTAL_TOKENS: usage.total or usage.input + usage.output,
        }.items()
    }
    attributes.update(_identity(facts))
    attributes[cv.ours(Tag.LANGCHAIN_RUN_ID)] = facts.langchain_run_id
    attributes[cv.ours(Tag.STATUS)] = facts.status
    if facts.stop_reason:
        attributes[cv.ours(Tag.STOP_REASON)] = facts.stop_reason
    if totals.unpriced_models:
        attributes[cv.ours(Tag.UNPRICED_MODELS)] = ",".join(totals.unpriced_models)
    if totals.tokens_estimated:
        attributes[cv.TOKENS_ESTIMATED] = True
    return attributes


def caller_attributes(facts: WorkflowFacts) -> dict[str, Any]:
    """The caller's tags (``ca_tags``), namespaced; set last, within a budget, and never
    in place of one of ours."""
    ours = workflow_attributes(facts)
    return {cv.ours(k): v for k, v in facts.caller.tags.items() if cv.ours(k) not in ours}


def node_attributes(node: NodeFacts, facts: WorkflowFacts) -> dict[str, Any]:
    calls = list(node.all_calls())
    end_ns = node.end_ns or node.start_ns
    attributes: dict[str, Any] = {
        cv.ours(Metric.NODE_DURATION_MS): round((end_ns - node.start_ns) / 1e6, 3),
        cv.ours(Metric.INPUT_TOKENS): float(sum(c.usage.input for c in calls)),
        cv.ours(Metric.OUTPUT_TOKENS): float(sum(c.usage.output for c in calls)),
        cv.ours(Metric.RETRIES): float(node.retries),
        cv.ours(Metric.COST_USD): round(sum(c.cost_usd for c in calls), 8),
        cv.ours(Metric.LLM_CALLS): float(len(calls)),
        cv.ours(Tag.NODE_ID): node.node_id or "",
        cv.ours(Tag.LANGCHAIN_RUN_ID): str(node.run_id),
        cv.ours(Tag.STATUS): node.status,
    }
    if node.handoff_to:
        attributes[cv.ours(Tag.HANDOFF_TO)] = node.handoff_to
    attributes.update(_identity(facts))
    return attributes


def _identity(facts: WorkflowFacts) -> dict[str, Any]:
    attributes = {cv.ours(Tag.WORKFLOW_NAME): facts.name}
    if facts.version:
        attributes[cv.ours(Tag.WORKFLOW_VERSION)] = facts.version
    for key, value in facts.attribution.items():
        attributes.setdefault(cv.ours(key), value)
    return attributes
