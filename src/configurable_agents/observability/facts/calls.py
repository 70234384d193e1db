"""One model call -> CallFacts: usage (reported or estimated), price, prompt and response text.

Runs on the pipeline thread: the snapshot taken on the caller is restored here,
usage is read from wherever the provider put it (or estimated and marked so), and
the price book prices it, so runs, traces and every other sink share one number.
"""

from __future__ import annotations

from typing import Any

from configurable_agents.names import Artifact, Tag
from configurable_agents.observability.capture.records import LLMCallRecord
from configurable_agents.observability.capture.snapshot import restore_result
from configurable_agents.observability.facts.plan import MAX_TAG_VALUE, CallFacts
from configurable_agents.observability.facts.serialization import content_text, render_messages
from configurable_agents.observability.facts.usage import (
    TokenUsage,
    estimate_usage,
    extract_usage,
    missing_stream_usage_hint,
    model_name_from_response,
)


def price_call(call: LLMCallRecord, price_book: Any, when: Any = None) -> CallFacts:
    call.response = restore_result(call.response)  # exporter thread: the caller is done
    metadata = call.metadata or {}
    params = call.invocation_params or {}
    model = (
        metadata.get("ls_model_name")
        or params.get("model")
        or params.get("model_name")
        or model_name_from_response(call.response)
    )
    provider = metadata.get("ls_provider") or params.get("_type")
    prompt_text = render_prompt(call)
    response_text = render_response(call)
    usage = extract_usage(call.response) if call.response is not None else None
    hint = None
    if usage is None and call.response is not None:
        hint = missing_stream_usage_hint(
            call.response, provider=provider, streamed=call.first_token_ns is not None
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
    return CallFacts(
        call, model, provider, usage, cost, priced, source, prompt_text, response_text, hint,
        breakdown,
    )



def usage_tags(facts: list[CallFacts]) -> dict[str, str]:
    tags: dict[str, str] = {}
    unpriced = sorted({f.model or "<unknown model>" for f in facts if not f.priced})
    if unpriced:
        tags[Tag.PRICING] = "unknown"
        tags[Tag.UNPRICED_MODELS] = ",".join(unpriced)[:MAX_TAG_VALUE]
    if any(f.usage.estimated for f in facts):
        tags[Tag.TOKENS_ESTIMATED] = "true"
        methods = sorted({f.usage.method for f in facts if f.usage.estimated and f.usage.method})
        if methods:
            tags[Tag.TOKENS_ESTIMATION_METHOD] = ",".join(methods)
    hints = {f.hint for f in facts if f.hint}
    if hints:
        tags[Tag.USAGE_HINT] = next(iter(hints))[:MAX_TAG_VALUE]
    if any(f.usage.llm_cache_hit for f in facts):
        tags[Tag.LLM_CACHE_HIT] = "true"
    answered = sorted({f.model or "<unknown model>" for f in facts if f.call.fallback_answer})
    if answered:
        tags[Tag.FALLBACK_MODEL] = ",".join(answered)[:MAX_TAG_VALUE]
    return tags


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
        return f"<error: {type(call.error).__name__}: {call.error}>"
    response = call.response
    if response is None:
        return ""
    texts = []
    for generations in getattr(response, "generations", None) or []:
        for generation in generations:
            message = getattr(generation, "message", None)
            if message is not None:
                texts.append(render_messages([message]))
            else:
                texts.append(content_text(getattr(generation, "text", "")))
    return "\n\n".join(texts)


def call_artifacts(facts: list[CallFacts]) -> dict[str, str]:
    if not facts:
        return {}
    if len(facts) == 1:
        only = facts[0]
        return {Artifact.PROMPT: only.prompt_text, Artifact.RESPONSE: only.response_text}
    prompts, responses = [], []
    for i, f in enumerate(facts, 1):
        header = f"=== call {i} ({f.model or 'model'}) ==="
        prompts.append(f"{header}\n{f.prompt_text}")
        responses.append(f"{header}\n{f.response_text}")
    return {Artifact.PROMPT: "\n\n".join(prompts), Artifact.RESPONSE: "\n\n".join(responses)}


