"""Values that go into MLflow spans and trace info: ids, previews, inputs/outputs, usage, cost.

Pure functions shared by the trace builder (:mod:`.trace_build`); MLflow's reserved
span and trace keys (``mlflow.chat.tokenUsage``, ``mlflow.llm.cost``, ...) are spelled here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from mlflow.tracing.constant import SpanAttributeKey

from configurable_agents.observability.facts.model import CallFacts, WorkflowFacts
from configurable_agents.observability.sinks.mlflow.trace_constants import PREVIEW_CHARS


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


def preview(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else dump(value)
    return text[:PREVIEW_CHARS]


def llm_inputs(call: CallFacts) -> Any:
    """Chat inputs in the OpenAI message shape MLflow's chat view renders."""
    if call.input_messages is not None:
        batches = [list(batch) for batch in call.input_messages]
        if len(batches) == 1:
            return {"messages": batches[0]}
        return [{"messages": batch} for batch in batches]
    return {"prompts": list(call.prompts)}


def llm_outputs(call: CallFacts) -> Any:
    if call.generations:
        outputs = [{"choices": list(batch)} for batch in call.generations]
        return outputs[0] if len(outputs) == 1 else outputs
    if call.response_text:
        return {"text": call.response_text}
    return None


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


def trace_usage(workflow: WorkflowFacts) -> dict[str, int]:
    calls = [call for _, call in workflow.model_calls()]
    if not any(not c.usage.is_empty for c in calls):
        return {}
    usage = workflow.totals.usage
    out = {
        "input_tokens": usage.input,
        "output_tokens": usage.output,
        "total_tokens": usage.total or usage.input + usage.output,
    }
    if usage.cache_read:
        out["cache_read_input_tokens"] = usage.cache_read
    if usage.cache_write:
        out["cache_creation_input_tokens"] = usage.cache_write
    return out


def trace_cost(workflow: WorkflowFacts) -> dict[str, float]:
    """The workflow's total cost, split into input/output only when every call has a split."""
    total = workflow.totals.cost_usd
    parts = [call_cost(c) for _, c in workflow.model_calls() if not c.usage.is_empty]
    if parts and all("input_cost" in p for p in parts):
        return {
            "input_cost": sum(p["input_cost"] for p in parts),
            "output_cost": sum(p["output_cost"] for p in parts),
            "total_cost": total,
        }
    return {"total_cost": total}
