"""One model call -> CallFacts: usage (reported or estimated), price, texts, cleaned content.

Runs on the pipeline thread: the snapshot taken on the caller is restored here,
usage is read from wherever the provider put it (or estimated and marked so), and
the price book prices it, so every sink shares one number.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from configurable_agents.observability.capture.records import LLMCallRecord
from configurable_agents.observability.capture.snapshot import restore_result
from configurable_agents.observability.facts import content
from configurable_agents.observability.facts.content import Cleaner
from configurable_agents.observability.facts.errors import error_facts
from configurable_agents.observability.facts.model import CallFacts
from configurable_agents.observability.facts.serialization import (
    content_text,
    render_messages,
    to_jsonable,
)
from configurable_agents.observability.facts.usage import (
    TokenUsage,
    estimate_usage,
    extract_usage,
    missing_stream_usage_hint,
    model_name_from_response,
)


def price_call(
    call: LLMCallRecord, price_book: Any, clean: Cleaner, when: Any = None
) -> CallFacts:
    call.response = restore_result(call.response)  # pipeline thread: the caller is done
    response = call.response
    metadata = call.metadata or {}
    params = call.invocation_params or {}
    model = (
        metadata.get("ls_model_name")
        or params.get("model")
        or params.get("model_name")
        or model_name_from_response(response)
    )
    model = None if model is None else content.safe_str(model)
    provider = metadata.get("ls_provider") or params.get("_type")
    provider = None if provider is None else content.safe_str(provider)
    prompt_text = render_prompt(call)
    response_text = render_response(call)
    usage = extract_usage(response) if response is not None else None
    hint = None
    if usage is None and response is not None:
        hint = missing_stream_usage_hint(
            response, provider=provider, streamed=call.first_token_ns is not None
        )
        usage = estimate_usage([prompt_text], [response_text], model)
    usage = usage or TokenUsage()
    breakdown = None
    if usage.llm_cache_hit:
        cost, priced, source = 0.0, True, "cache-hit"
    elif model and not usage.is_empty:
        estimate = price_book.estimate_cost(usage, model, provider=provider, when=when)
        cost, priced, source = estimate.amount, estimate.priced, estimate.source
        breakdown = estimate.breakdown if estimate.priced else None
    else:
        cost, priced, source = 0.0, usage.is_empty, "none" if usage.is_empty else "unpriced"
    reasons, response_id = content.response_details(response)
    tools = params.get("tools")
    tool_defs = tuple(clean.content(tools)) if isinstance(tools, list | tuple) else ()
    request = {k: v for k, v in params.items() if k != "tools"}
    temperature = params.get("temperature")
    max_tokens = params.get("max_tokens") or params.get("max_output_tokens")
    return CallFacts(
        run_id=call.run_id,
        name=clean.opt(call.name),
        operation="chat" if call.messages is not None else "text_completion",
        start_ns=call.start_ns,
        end_ns=call.end_ns,
        first_token_ns=call.first_token_ns,
        retry_attempt=call.retry_attempt,
        model=model,
        provider=provider,
        response_model=model_name_from_response(response),
        usage=usage,
        cost_usd=float(cost),
        priced=bool(priced),
        cost_source=source,
        breakdown=breakdown,
        hint=hint,
        prompt_text=clean.text(prompt_text),
        response_text=clean.text(response_text),
        input_messages=(
            tuple(tuple(clean.tree(m) for m in batch)
                  for batch in content.chat_inputs(call.messages))
            if call.messages is not None else None
        ),
        prompts=tuple(clean.text(p) for p in call.prompts or ()),
        generations=tuple(
            tuple(clean.tree(g) for g in batch) for batch in content.generations(response)
        ),
        finish_reasons=tuple(reasons),
        response_id=response_id,
        request_params=MappingProxyType(clean.tree(to_jsonable(request))),
        tool_definitions=tool_defs,
        temperature=(
            float(temperature)
            if isinstance(temperature, int | float) and not isinstance(temperature, bool)
            else None
        ),
        max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool)
        else None,
        error=error_facts(call.error, clean),
        fallback_answer=call.fallback_answer,
    )


def render_prompt(call: LLMCallRecord) -> str:
    if call.messages is not None:
        batches = call.messages
        if len(batches) == 1:
            return render_messages(batches[0])
        return "\n\n".join(
            f"--- prompt {i} ---\n{render_messages(b)}" for i, b in enumerate(batches, 1)
        )
    return "\n\n".join(call.prompts or [])


def render_response(call: LLMCallRecord) -> str:
    if call.error is not None:
        return f"<error: {type(call.error).__name__}: {content.safe_str(call.error)}>"
    response = call.response
    if response is None:
        return ""
    texts = []
    for batch in getattr(response, "generations", None) or []:
        for generation in batch:
            message = getattr(generation, "message", None)
            if message is not None:
                texts.append(render_messages([message]))
            else:
                texts.append(content_text(getattr(generation, "text", "")))
    return "\n\n".join(texts)
