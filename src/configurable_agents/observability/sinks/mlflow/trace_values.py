"""Values that go into MLflow spans and trace info: ids, previews, inputs/outputs, usage, cost.

Pure functions shared by the trace builder (:mod:`.trace_build`); MLflow's reserved
span and trace keys (``mlflow.chat.tokenUsage``, ``mlflow.llm.cost``, ...) are spelled here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from langchain_core.messages.utils import convert_to_openai_messages
from mlflow.tracing.constant import SpanAttributeKey

from configurable_agents.names import Metric
from configurable_agents.observability.capture.records import (
    LLMCallRecord,
    WorkflowRecord,
)
from configurable_agents.observability.facts.assemble import CallFacts, RunPlan
from configurable_agents.observability.facts.serialization import to_jsonable

if TYPE_CHECKING:

    pass

from configurable_agents.observability.sinks.mlflow.trace_constants import (
    PREVIEW_CHARS,
)


def make_span_id(trace_id: str, key: str) -> str:
    """Deterministic, non-zero 64-bit span id (base64, as ``Span.from_dict`` expects)."""
    digest = hashlib.blake2b(f"{trace_id}/{key}".encode(), digest_size=8).digest()
    if digest == b"\0" * 8:
        digest = b"\0" * 7 + b"\1"
    return base64.b64encode(digest).decode()


def event(name: str, when_ns: int, attributes: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "time_unix_nano": when_ns, "attributes": attributes}


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def redact_tree(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_tree(v, redact) for v in value]
    if isinstance(value, dict):
        return {k: redact_tree(v, redact) for k, v in value.items()}
    return value


def preview(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else dump(value)
    return text[:PREVIEW_CHARS]


def root_outputs(workflow: WorkflowRecord) -> Any:
    outputs = workflow.outputs
    if workflow.kind == "llm" and hasattr(outputs, "generations"):
        return generations_output(outputs)
    return outputs


def llm_inputs(call: LLMCallRecord) -> Any:
    """Chat inputs in the OpenAI message shape MLflow's chat view renders."""
    if call.messages is not None:
        batches = [_mask_arguments(convert_to_openai_messages(batch)) for batch in call.messages]
        if len(batches) == 1:
            return {"messages": batches[0]}
        return [{"messages": batch} for batch in batches]
    return {"prompts": list(call.prompts or [])}


def _mask_arguments(value: Any) -> Any:
    """Secret-named tool-call arguments masked: the OpenAI shape carries them as a JSON
    *string* (``function.arguments``), which key-based masking alone never looks into."""
    if isinstance(value, list):
        return [_mask_arguments(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _mask_arguments(v) for k, v in value.items()}
    arguments = out.get("arguments")
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            return out
        out["arguments"] = json.dumps(to_jsonable(parsed))
    return out


def generations_output(response: Any) -> Any:
    outputs = []
    for generations in getattr(response, "generations", None) or []:
        choices = []
        for generation in generations:
            message = getattr(generation, "message", None)
            info = getattr(generation, "generation_info", None) or {}
            if message is not None:
                choices.append({"message": _mask_arguments(convert_to_openai_messages(message)),
                                "finish_reason": info.get("finish_reason")})
            else:
                choices.append({"text": getattr(generation, "text", "")})
        outputs.append({"choices": choices})
    if len(outputs) == 1:
        return outputs[0]
    return outputs or None


def llm_outputs(call: LLMCallRecord, facts: CallFacts | None) -> Any:
    if call.response is not None:
        output = generations_output(call.response)
        if output is not None:
            return output
    if facts is not None and facts.response_text:
        return {"text": facts.response_text}
    return None


def tool_output(output: Any) -> Any:
    """A tool's ToolMessage is shown as its content; documents and other values as they are."""
    if getattr(output, "type", None) == "tool" and hasattr(output, "content"):
        return output.content
    return output


def call_cost(facts: CallFacts) -> dict[str, float]:
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


def usage_and_cost_attributes(facts: CallFacts) -> dict[str, Any]:
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
        attributes[SpanAttributeKey.LLM_COST] = call_cost(facts)
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


def trace_usage(plan: RunPlan) -> dict[str, int]:
    metrics = plan.metrics
    if not any(not f.usage.is_empty for f in plan.calls):
        return {}
    usage = {
        "input_tokens": int(metrics.get(Metric.TOTAL_INPUT_TOKENS, 0)),
        "output_tokens": int(metrics.get(Metric.TOTAL_OUTPUT_TOKENS, 0)),
        "total_tokens": int(metrics.get(Metric.TOTAL_TOKENS, 0)),
    }
    if metrics.get(Metric.TOTAL_CACHED_INPUT_TOKENS):
        usage["cache_read_input_tokens"] = int(metrics[Metric.TOTAL_CACHED_INPUT_TOKENS])
    if metrics.get(Metric.TOTAL_CACHE_WRITE_TOKENS):
        usage["cache_creation_input_tokens"] = int(metrics[Metric.TOTAL_CACHE_WRITE_TOKENS])
    return usage


def trace_cost(plan: RunPlan) -> dict[str, float]:
    """The run's ``total_cost_usd``, split into input/output only when every call has a split."""
    total = float(plan.metrics.get(Metric.TOTAL_COST_USD, 0.0))
    parts = [call_cost(f) for f in plan.calls if not f.usage.is_empty]
    if parts and all("input_cost" in p for p in parts):
        return {
            "input_cost": sum(p["input_cost"] for p in parts),
            "output_cost": sum(p["output_cost"] for p in parts),
            "total_cost": total,
        }
    return {"total_cost": total}


