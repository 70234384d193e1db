"""Token usage from any LangChain provider response, as one :class:`TokenUsage`.

This module walks LangChain objects (``LLMResult``, ``ChatResult``, generations,
messages, streamed chunks) and decides *which* usage report to read; what each
provider's dict means is :mod:`.provider_usage`'s job, and the local fallback
count is :mod:`.tokenizer`'s. Every number is in LangChain's ``UsageMetadata``
semantic: ``input`` includes cache reads/writes, ``output`` includes reasoning.

Exactly one source is used per generation (``usage_metadata``, else the raw
``response_metadata``, else ``generation_info``), so a token is never counted
twice. Streaming: LangChain integrations put usage *deltas* on chunks (OpenAI and
Anthropic report once, in the last chunk; the Gemini client converts Google's
cumulative counts to deltas), so merging chunks the LangChain way
(``chunk + chunk``) gives the total. Raw provider dicts on chunks are cumulative or
one-shot, so for those only the *last* report is used, never a sum.

``TokenUsage``, ``usage_from_mapping`` and ``estimate_usage`` are re-exported here,
so callers import everything about usage from one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    Generation,
    GenerationChunk,
    LLMResult,
)

from configurable_agents.observability.facts.provider_usage import (
    from_raw_metadata,
    from_usage_metadata,
    usage_from_mapping,
)
from configurable_agents.observability.facts.token_usage import (
    EMPTY_USAGE,
    METHOD_LLM_CACHE,
    METHOD_LLM_OUTPUT,
    METHOD_USAGE_METADATA,
    TokenUsage,
)
from configurable_agents.observability.facts.tokenizer import estimate_usage

__all__ = [
    "METHOD_LLM_CACHE",
    "METHOD_LLM_OUTPUT",
    "METHOD_USAGE_METADATA",
    "STREAM_USAGE_HINT",
    "TokenUsage",
    "estimate_usage",
    "extract_usage",
    "is_llm_cache_hit",
    "missing_stream_usage_hint",
    "model_name_from_response",
    "usage_from_mapping",
]

STREAM_USAGE_HINT = (
    "The OpenAI-compatible chat model streamed no token usage, so tokens and cost were "
    "estimated with tiktoken. ChatOpenAI only requests usage while streaming from a "
    "custom base_url (proxy, gateway, Azure, vLLM, ...) when asked: create it with "
    "ChatOpenAI(..., stream_usage=True) or call .stream(..., stream_usage=True)."
)


# --- LangChain objects ----------------------------------------------------------------


def is_llm_cache_hit(obj: Any) -> bool:
    """True if ``obj`` (message, generation, result, chunks) was served from LangChain's LLM cache.

    langchain-core (``BaseChatModel._convert_cached_generations``) copies a cached
    message with ``usage_metadata["total_cost"] = 0`` added; no provider integration
    sets ``total_cost``, so its presence is the reliable cache-hit signal. ``on_llm_end``
    still fires for cache hits, with that message.
    """
    for message, _info in _messages(obj):
        um = getattr(message, "usage_metadata", None)
        if isinstance(um, Mapping) and "total_cost" in um and um.get("total_cost") == 0:
            return True
    return False


def _messages(obj: Any) -> list[tuple[Any, Mapping[str, Any] | None]]:
    """(message, generation_info) pairs of every generation in ``obj``."""
    if isinstance(obj, BaseMessage):
        return [(obj, None)]
    if isinstance(obj, ChatGeneration):
        return [(obj.message, obj.generation_info)]
    if isinstance(obj, Generation):
        return [(None, obj.generation_info)]
    if isinstance(obj, LLMResult | ChatResult):
        return [pair for group in _generation_groups(obj) for gen in group
                for pair in _messages(gen)]
    if isinstance(obj, list | tuple):
        return [pair for item in obj for pair in _messages(item)]
    return []


def _generation_groups(result: LLMResult | ChatResult) -> list[list[Any]]:
    """Generations grouped per prompt: an LLMResult has one list per prompt, a ChatResult one."""
    if isinstance(result, ChatResult):
        return [list(result.generations)]
    return [list(group) for group in result.generations]


def _from_message(message: Any, info: Mapping[str, Any] | None) -> TokenUsage | None:
    """Usage of one generation: usage_metadata, else raw response_metadata, else generation_info."""
    if message is not None:
        um = getattr(message, "usage_metadata", None)
        if isinstance(um, Mapping) and um:
            if "total_cost" in um and um.get("total_cost") == 0:
                return _cache_hit(um)
            return from_usage_metadata(um)
        parsed = from_raw_metadata(getattr(message, "response_metadata", None))
        if parsed is not None:
            return parsed
    return from_raw_metadata(info)


def _cache_hit(um: Mapping[str, Any]) -> TokenUsage:
    base = from_usage_metadata(um) if "input_tokens" in um else EMPTY_USAGE
    methods = "+".join(m for m in (METHOD_LLM_CACHE, base.method) if m)
    return TokenUsage(**{**base.as_dict(), "method": methods, "llm_cache_hit": True})


def _sum(parts: Iterable[TokenUsage]) -> TokenUsage | None:
    result: TokenUsage | None = None
    for part in parts:
        result = part if result is None else result + part
    return result


def _from_chunks(chunks: Sequence[Any]) -> TokenUsage | None:
    """Usage of a streamed response given as its chunks (messages or generation chunks)."""
    messages = [m for m, _ in _messages(list(chunks)) if m is not None]
    merged_um = [getattr(m, "usage_metadata", None) for m in messages]
    if any(isinstance(um, Mapping) and um for um in merged_um):
        # LangChain contract: chunk usage_metadata are deltas; + of chunks sums them.
        merged = messages[0]
        for m in messages[1:]:
            merged = merged + m
        return _from_message(merged, None)
    # Raw provider usage on chunks is cumulative or one-shot: the last report wins.
    for message, info in reversed(_messages(list(chunks))):
        parsed = _from_message(message, info)
        if parsed is not None:
            return parsed
    return None


_CHUNK_TYPES = (BaseMessageChunk, ChatGenerationChunk, GenerationChunk)


def _is_chunk_list(obj: Any) -> bool:
    return isinstance(obj, list | tuple) and bool(obj) and all(
        isinstance(x, _CHUNK_TYPES) for x in obj
    )


def extract_usage(obj: Any, *, model_hint: str | None = None) -> TokenUsage | None:
    """Token usage reported in ``obj``, or None when the provider reported nothing.

    ``obj`` is an ``LLMResult``/``ChatResult``, a ``ChatGeneration``, an
    ``AIMessage``/``AIMessageChunk``, a list of streamed chunks, or a raw usage dict.
    Within one prompt's generations (``n > 1``) providers repeat the same usage on
    every choice, so the first one with usage is taken; separate prompts of a batch
    are summed. ``llm_output`` (the aggregated dict of the whole call) is read only
    when no generation carries usage. ``model_hint`` is accepted for symmetry with
    :func:`estimate_usage`; reported usage does not depend on it.
    """
    del model_hint  # reported numbers never depend on the model
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return usage_from_mapping(obj)
    if _is_chunk_list(obj):
        return _from_chunks(obj)
    if isinstance(obj, LLMResult | ChatResult):
        per_prompt: list[TokenUsage] = []
        for gens in _generation_groups(obj):
            for message, info in (pair for gen in gens for pair in _messages(gen)):
                parsed = _from_message(message, info)
                if parsed is not None:
                    per_prompt.append(parsed)
                    break
        found = _sum(per_prompt)
        if found is not None:
            return found
        llm_output = obj.llm_output or {}
        for key in ("token_usage", "usage", "usage_metadata"):
            raw = llm_output.get(key)
            if isinstance(raw, Mapping) and (parsed := usage_from_mapping(raw)) is not None:
                return TokenUsage(**{**parsed.as_dict(), "method": METHOD_LLM_OUTPUT})
        return None
    if isinstance(obj, list | tuple):
        return _sum(u for item in obj if (u := extract_usage(item)) is not None)
    return _sum(
        u for message, info in _messages(obj) if (u := _from_message(message, info)) is not None
    )


_MODEL_KEYS = ("model_name", "model", "model_id", "modelId", "model_version", "modelVersion")


def model_name_from_response(obj: Any) -> str | None:
    """The model name the provider echoed (often dated, e.g. ``gpt-4o-2024-08-06``)."""
    if obj is None:
        return None
    sources: list[Mapping[str, Any] | None] = []
    for message, info in _messages(obj if not _is_chunk_list(obj) else list(reversed(obj))):
        sources.append(getattr(message, "response_metadata", None) if message is not None else None)
        sources.append(info)
    if isinstance(obj, LLMResult | ChatResult):
        sources.append(obj.llm_output)
    for meta in sources:
        if isinstance(meta, Mapping):
            for key in _MODEL_KEYS:
                value = meta.get(key)
                if isinstance(value, str) and value:
                    return value
    return None


def missing_stream_usage_hint(
    obj: Any, *, provider: str | None = None, streamed: bool = False
) -> str | None:
    """A user hint when an OpenAI-compatible *streamed* response carried no usage.

    ChatOpenAI sends ``stream_options.include_usage`` only when ``stream_usage`` is
    True, and it defaults to True only for the default OpenAI base URL, so a proxy,
    gateway or self-hosted server yields streamed messages without usage. Detect it
    from the result itself: a chunk (streamed) from ``model_provider == "openai"``
    (or ``provider``) whose usage is missing. ``streamed`` says the call streamed
    tokens even though its result is a plain message: ``invoke`` streams under
    LangGraph's ``stream_mode="messages"`` and merges the chunks into an ``AIMessage``.
    Returns None when nothing is wrong.
    """
    pairs = _messages(obj)
    if not pairs or extract_usage(obj) is not None:
        return None
    from_openai = (provider or "").lower() in {"openai", "azure", "azure_openai"}
    for message, _ in pairs:
        if message is None:
            continue
        streamed = streamed or isinstance(message, BaseMessageChunk)
        meta = getattr(message, "response_metadata", None) or {}
        from_openai = from_openai or meta.get("model_provider") == "openai"
    if _is_chunk_list(obj) or isinstance(obj, _CHUNK_TYPES):
        streamed = True
    return STREAM_USAGE_HINT if streamed and from_openai else None
