"""WorkflowFacts -> OpenTelemetry spans with the real start and end times, after the fact.

Runs on the sink's worker thread. Parents are explicit (``context=`` on every
``start_span``), never taken from the worker's current context, so parallel branches,
threads and ``asyncio.gather`` invocations keep their own trees; the invocation span's
parent is the app span captured on the caller thread at workflow start.

Tree: ``invoke_workflow {workflow}`` -> ``invoke_agent {node}`` (subgraph nodes nest)
-> ``chat {model}`` / ``execute_tool {tool}``; model and tool calls made outside any
node hang from the invocation span. Usage and cost come from the facts' CallFacts, the
ADR-011 metrics and tags from the RunPlans, so OpenTelemetry and MLflow agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, Tracer

from configurable_agents.names import ATTRIBUTION_KEYS, DspyTag, EvalTag, Metric, Tag
from configurable_agents.observability.facts.assemble import CallFacts, RunPlan
from configurable_agents.observability.facts.plan import safe_str
from configurable_agents.observability.facts.usage import model_name_from_response
from configurable_agents.observability.facts.workflow_facts import WorkflowFacts
from configurable_agents.observability.sinks.otel import content
from configurable_agents.observability.sinks.otel import conventions as cv

if TYPE_CHECKING:
    from configurable_agents.observability.capture.records import (
        LLMCallRecord,
        NodeRecord,
        ToolCallRecord,
    )

# Tags that are MLflow bookkeeping or duplicated by a gen_ai attribute: not copied to spans.
_SKIPPED_TAGS = frozenset(
    {Tag.MLFLOW_PARENT_RUN_ID, Tag.HOST, Tag.PID, Tag.HEARTBEAT_MS, Tag.ERROR_MESSAGE, Tag.TRACE_ID}
)


def _names(*holders: type) -> frozenset[str]:
    return frozenset(v for h in holders for k, v in vars(h).items()
                     if k.isupper() and isinstance(v, str))


# Metric and tag names we compute or define; every other key of a plan came from the caller
# (``ca_tags`` and the like) and shares a bounded budget, set after ours.
_OUR_METRICS = _names(Metric)
_OUR_TAGS = _names(Tag, EvalTag, DspyTag) | frozenset(ATTRIBUTION_KEYS)
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

    def emit(self, facts: WorkflowFacts, parent: SpanContext | None) -> int:
        record, plan = facts.record, facts.plan
        self._redact = facts.options.redact
        self._conversation = plan.tags.get("thread_id")
        context = (
            trace.set_span_in_context(trace.NonRecordingSpan(parent), Context())
            if parent is not None and parent.is_valid
            else Context()  # explicit: never the worker thread's own context
        )
        end_ns = record.end_ns or record.start_ns
        root = self.tracer.start_span(
            f"{cv.Operation.INVOKE_WORKFLOW} {record.name}",
            context=context,
            kind=SpanKind.INTERNAL,
            start_time=record.start_ns,
            attributes=self._common(cv.Operation.INVOKE_WORKFLOW),
        )
        root.set_attribute(cv.WORKFLOW_NAME, record.name)
        caller = _set_plan(root, plan)
        if record.interrupted:
            root.add_event(cv.INTERRUPT_EVENT, timestamp=end_ns)
        self._status(root, record.error, plan.tags.get(Tag.ERROR_MESSAGE))
        self._set_caller(root, caller)
        count = 1
        root_context = trace.set_span_in_context(root, Context())
        direct = record.direct
        if direct is not None:
            count += self._calls(root_context, plan, direct)
        for child in plan.children:
            count += self._node(root_context, child)
        root.end(end_time=end_ns)
        return count

    # ---- per kind ---------------------------------------------------------------------------

    def _node(self, parent: Context, plan: RunPlan) -> int:
        node = plan.node
        if node is None:  # pragma: no cover - the assembler sets it on every node plan
            return 0
        span = self.tracer.start_span(
            f"{cv.Operation.INVOKE_AGENT} {node.node_id}",
            context=parent,
            kind=SpanKind.INTERNAL,
            start_time=node.start_ns,
            attributes=self._common(cv.Operation.INVOKE_AGENT),
        )
        span.set_attribute(cv.AGENT_NAME, node.node_id)
        if node.step is not None:
            span.set_attribute(cv.STEP, int(node.step))
        caller = _set_plan(span, plan)
        self._status(span, node.error, plan.tags.get(Tag.ERROR_MESSAGE))
        self._set_caller(span, caller)
        context = trace.set_span_in_context(span, Context())
        count = 1 + self._calls(context, plan, node)
        for child in plan.children:
            count += self._node(context, child)
        span.end(end_time=node.end_ns or node.start_ns)
        return count

    def _calls(self, parent: Context, plan: RunPlan, node: NodeRecord) -> int:
        own = {id(f.call): f for f in plan.calls}
        count = 0
        for call in node.llm_calls:
            facts = own.get(id(call))
            if facts is not None:
                self._model_call(parent, facts)
                count += 1
        for tool in node.tool_calls:
            self._tool_call(parent, tool)
            count += 1
        return count

    def _model_call(self, parent: Context, facts: CallFacts) -> None:
        call = facts.call
        operation = cv.Operation.CHAT if call.messages is not None else cv.Operation.TEXT_COMPLETION
        span = self.tracer.start_span(
            f"{operation} {facts.model}" if facts.model else operation,
            context=parent,
            kind=SpanKind.CLIENT,
            start_time=call.start_ns,
            attributes=self._common(operation),
        )
        attributes: dict[str, Any] = {}
        provider = cv.provider_name(facts.provider)
        if provider:
            attributes[cv.PROVIDER_NAME] = provider
        if facts.model:
            attributes[cv.REQUEST_MODEL] = facts.model
        response_model = model_name_from_response(call.response)
        if response_model:
            attributes[cv.RESPONSE_MODEL] = response_model
        attributes.update(_request_params(call))
        usage = facts.usage
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
        attributes[cv.COST_USD] = float(facts.cost_usd)
        attributes[cv.PRICED] = bool(facts.priced)
        attributes[cv.COST_SOURCE] = facts.cost_source
        if call.retry_attempt > 1:
            attributes[cv.RETRY_ATTEMPT] = call.retry_attempt
        if call.first_token_ns is not None:
            ttfc_s = (call.first_token_ns - call.start_ns) / 1e9
            attributes[cv.RESPONSE_TIME_TO_FIRST_CHUNK] = ttfc_s
        finish_reasons, response_id = _response_details(call.response)
        if finish_reasons:
            attributes[cv.RESPONSE_FINISH_REASONS] = finish_reasons
        if response_id:
            attributes[cv.RESPONSE_ID] = response_id
        if self.capture_content:
            attributes[cv.INPUT_MESSAGES] = content.input_messages(facts, self._redact)
            if call.error is None:
                attributes[cv.OUTPUT_MESSAGES] = content.output_messages(
                    facts, finish_reasons, self._redact
                )
        span.set_attributes(attributes)
        self._status(span, call.error, None)
        span.end(end_time=call.end_ns or call.start_ns)

    def _tool_call(self, parent: Context, tool: ToolCallRecord) -> None:
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
        if tool.kind != "retriever":
            span.set_attribute(cv.TOOL_TYPE, "function")
        call_id = _tool_call_id(tool.input)
        if call_id:
            span.set_attribute(cv.TOOL_CALL_ID, call_id)
        if self.capture_content:
            span.set_attribute(cv.TOOL_CALL_ARGUMENTS, content.payload(tool.input, self._redact))
            if tool.error is None and tool.output is not None:
                span.set_attribute(cv.TOOL_CALL_RESULT, content.payload(tool.output, self._redact))
        self._status(span, tool.error, None)
        span.end(end_time=tool.end_ns or tool.start_ns)

    # ---- shared -----------------------------------------------------------------------------

    def _common(self, operation: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {cv.OPERATION_NAME: operation}
        if self._conversation:
            attributes[cv.CONVERSATION_ID] = self._conversation
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

    def _status(self, span: Span, error: BaseException | None, message: str | None) -> None:
        if error is None:
            return
        text = message if message is not None else safe_str(error)
        text = content.clean(text, self._redact)
        span.set_attribute(cv.ERROR_TYPE, type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {text}"[:1000]))


def _set_plan(span: Span, plan: RunPlan) -> dict[str, Any]:
    """Set the ADR-011 metrics and tags of the run this span mirrors, namespaced.

    Returns the caller's (metrics and tags with names we did not coin) for
    :meth:`SpanBuilder._set_caller`, which sets them last within a budget.
    """
    ours: dict[str, Any] = {}
    caller: dict[str, Any] = {}
    for key, value in plan.metrics.items():
        (ours if key in _OUR_METRICS else caller)[cv.ours(key)] = float(value)
    for key, value in plan.tags.items():
        if key not in _SKIPPED_TAGS and not key.startswith("mlflow."):
            (ours if key in _OUR_TAGS else caller)[cv.ours(key)] = value
    span.set_attributes(ours)
    return caller


def _request_params(call: LLMCallRecord) -> dict[str, Any]:
    params = call.invocation_params or {}
    out: dict[str, Any] = {}
    temperature = params.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        out[cv.REQUEST_TEMPERATURE] = float(temperature)
    max_tokens = params.get("max_tokens") or params.get("max_output_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        out[cv.REQUEST_MAX_TOKENS] = max_tokens
    return out


def _response_details(response: Any) -> tuple[list[str], str | None]:
    """Finish (stop) reasons of the first prompt's generations and the provider's response id."""
    reasons: list[str] = []
    response_id = None
    generations = (getattr(response, "generations", None) or [[]])[0]
    for generation in generations:
        info = getattr(generation, "generation_info", None) or {}
        message = getattr(generation, "message", None)
        metadata: Mapping[str, Any] = getattr(message, "response_metadata", None) or {}
        reason = (
            info.get("finish_reason")
            or metadata.get("finish_reason")
            or metadata.get("stop_reason")
            or info.get("stop_reason")
        )
        if reason:
            reasons.append(str(reason))
        if response_id is None:
            response_id = metadata.get("id")  # the provider's (message.id is LangChain's run id)
    return reasons, (str(response_id) if response_id else None)


def _tool_call_id(tool_input: Any) -> str | None:
    if isinstance(tool_input, Mapping):
        value = tool_input.get("tool_call_id") or tool_input.get("id")
        return str(value) if value else None
    return None
