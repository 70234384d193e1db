"""Token usage from any LangChain provider response, as one :class:`TokenUsage`.

Providers report usage in different places and with different meanings. This module
reads all of them and converts to one semantic, LangChain's ``UsageMetadata`` one:

- ``input`` is the *total* prompt, including tokens read from and written to a
  prompt cache (``cache_read`` / ``cache_write`` are parts of ``input``);
- ``output`` is the total completion, including reasoning/thinking tokens
  (``reasoning`` and ``audio_out`` are parts of ``output``, never added again).

Where each provider puts its numbers (and what we convert):

=====================  ==============================================  ===========================
source                 location                                        conversion
=====================  ==============================================  ===========================
LangChain standard     ``AIMessage.usage_metadata``                    none (already the semantic)
OpenAI (Chat)          ``response_metadata["token_usage"]``,           ``prompt_tokens`` already
                       ``llm_output["token_usage"]``                   includes ``cached_tokens``
Anthropic              ``response_metadata["usage"]``                  ``input_tokens`` *excludes*
                                                                       cache reads/writes: added
Gemini                 ``usage_metadata`` (raw, snake or camel case)   ``thoughts_token_count`` is
                                                                       *not* in candidates: added
Bedrock                ``amazon-bedrock-invocationMetrics``,           cache counts added to input
                       Converse ``usage`` (camelCase)
Ollama                 ``prompt_eval_count`` / ``eval_count``          none
=====================  ==============================================  ===========================

Exactly one source is used per generation (the first found, in the order above), so
a token is never counted twice. Streaming: LangChain integrations put usage *deltas*
on chunks (OpenAI and Anthropic report once, in the last chunk; the Gemini client
converts Google's cumulative counts to deltas), so merging chunks the LangChain way
(``chunk + chunk``) gives the total. Raw provider dicts on chunks are cumulative or
one-shot, so for those only the *last* report is used, never a sum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
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

__all__ = [
    "TokenUsage",
    "estimate_usage",
    "extract_usage",
    "is_llm_cache_hit",
    "missing_stream_usage_hint",
    "model_name_from_response",
    "usage_from_mapping",
]

# Method names recorded on TokenUsage.method (one word per source, joined by "+" when summed).
METHOD_USAGE_METADATA = "usage_metadata"
METHOD_LLM_OUTPUT = "llm_output"
METHOD_LLM_CACHE = "llm_cache"

STREAM_USAGE_HINT = (
    "The OpenAI-compatible chat model streamed no token usage, so tokens and cost were "
    "estimated with tiktoken. ChatOpenAI only requests usage while streaming from a "
    "custom base_url (proxy, gateway, Azure, vLLM, ...) when asked: create it with "
    "ChatOpenAI(..., stream_usage=True) or call .stream(..., stream_usage=True)."
)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens of one or more LLM calls, in LangChain's semantic.

    ``cache_read``, ``cache_write`` and ``audio_in`` are parts of ``input``;
    ``cache_write_1h`` is the part of ``cache_write`` billed at the 1-hour TTL rate
    (Anthropic); ``reasoning`` and ``audio_out`` are parts of ``output``.
    ``estimated`` is True when any part was counted locally (tiktoken or characters)
    instead of reported by the provider; ``method`` says how (``+``-joined when summed).
    ``llm_cache_hit`` is True when the response came from LangChain's LLM cache: the
    numbers are those of the cached response, but no provider call was made (cost 0).
    """

    input: int = 0
    output: int = 0
    total: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0
    audio_in: int = 0
    audio_out: int = 0
    estimated: bool = False
    method: str = ""
    llm_cache_hit: bool = False

    @property
    def is_empty(self) -> bool:
        """True for the zero value ``TokenUsage()`` (the identity of ``+``)."""
        return self == _EMPTY

    def __add__(self, other: object) -> TokenUsage:
        if not isinstance(other, TokenUsage):
            return NotImplemented
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        methods = list(dict.fromkeys(m for part in (self.method, other.method)
                                     for m in part.split("+") if m))
        return TokenUsage(
            input=self.input + other.input,
            output=self.output + other.output,
            total=self.total + other.total,
            cache_read=self.cache_read + other.cache_read,
            cache_write=self.cache_write + other.cache_write,
            cache_write_1h=self.cache_write_1h + other.cache_write_1h,
            reasoning=self.reasoning + other.reasoning,
            audio_in=self.audio_in + other.audio_in,
            audio_out=self.audio_out + other.audio_out,
            estimated=self.estimated or other.estimated,
            method="+".join(methods),
            llm_cache_hit=self.llm_cache_hit and other.llm_cache_hit,
        )

    def __radd__(self, other: object) -> TokenUsage:
        # Lets ``sum(usages)`` work: sum() starts from the int 0.
        if other == 0:
            return self
        return self.__add__(other)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for logging/serialising)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_EMPTY = TokenUsage()


def _int(value: Any) -> int:
    """A token count from a provider value; None, bools, junk -> 0."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float):
        return max(int(value), 0)
    return 0


def _get(mapping: Mapping[str, Any], *keys: str) -> Any:
    """The first present, non-None value among ``keys``."""
    for key in keys:
        value = mapping.get(key)
        if value is not None:
            return value
    return None


def _sum_keys(details: Mapping[str, Any], name: str) -> int:
    """Sum ``name`` and service-tier variants such as ``priority_cache_read``."""
    return sum(_int(v) for k, v in details.items() if k == name or k.endswith("_" + name))


def _make(
    input_: int,
    output: int,
    total: int | None,
    *,
    method: str,
    cache_read: int = 0,
    cache_write: int = 0,
    cache_write_1h: int = 0,
    reasoning: int = 0,
    audio_in: int = 0,
    audio_out: int = 0,
) -> TokenUsage:
    return TokenUsage(
        input=input_,
        output=output,
        total=total if total else input_ + output,
        cache_read=cache_read,
        cache_write=cache_write,
        cache_write_1h=min(cache_write_1h, cache_write),
        reasoning=reasoning,
        audio_in=audio_in,
        audio_out=audio_out,
        method=method,
    )


# --- one parser per provider format -------------------------------------------------


def _from_usage_metadata(um: Mapping[str, Any]) -> TokenUsage:
    """LangChain ``UsageMetadata``: already total-input / total-output semantics.

    ChatAnthropic reports cache writes under ``ephemeral_5m_input_tokens`` /
    ``ephemeral_1h_input_tokens`` and then sets ``cache_creation`` to 0; when those
    are absent ``cache_creation`` holds the writes. ChatOpenAI prefixes details with
    the service tier (``priority_cache_read``, ``flex_reasoning``).
    """
    itd = um.get("input_token_details") or {}
    otd = um.get("output_token_details") or {}
    w5m = _int(itd.get("ephemeral_5m_input_tokens"))
    w1h = _int(itd.get("ephemeral_1h_input_tokens"))
    cache_write = w5m + w1h if w5m + w1h > 0 else _sum_keys(itd, "cache_creation")
    return _make(
        _int(um.get("input_tokens")),
        _int(um.get("output_tokens")),
        _int(um.get("total_tokens")),
        method=METHOD_USAGE_METADATA,
        cache_read=_sum_keys(itd, "cache_read"),
        cache_write=cache_write,
        cache_write_1h=w1h,
        reasoning=_sum_keys(otd, "reasoning"),
        audio_in=_int(itd.get("audio")),
        audio_out=_int(otd.get("audio")),
    )


def _from_openai(u: Mapping[str, Any]) -> TokenUsage:
    """OpenAI Chat Completions (``prompt_tokens``) or Responses (``input_tokens_details``)."""
    pd = u.get("prompt_tokens_details") or u.get("input_tokens_details") or {}
    cd = u.get("completion_tokens_details") or u.get("output_tokens_details") or {}
    return _make(
        _int(_get(u, "prompt_tokens", "input_tokens")),
        _int(_get(u, "completion_tokens", "output_tokens")),
        _int(u.get("total_tokens")),
        method="openai",
        cache_read=_int(pd.get("cached_tokens")),
        cache_write=_int(pd.get("cache_write_tokens")),
        reasoning=_int(cd.get("reasoning_tokens")),
        audio_in=_int(pd.get("audio_tokens")),
        audio_out=_int(cd.get("audio_tokens")),
    )


def _from_anthropic(u: Mapping[str, Any]) -> TokenUsage:
    """Anthropic Messages ``usage``: ``input_tokens`` excludes cache reads and writes."""
    cache_read = _int(u.get("cache_read_input_tokens"))
    creation = u.get("cache_creation") or {}
    w1h = _int(creation.get("ephemeral_1h_input_tokens")) if isinstance(creation, Mapping) else 0
    w5m = _int(creation.get("ephemeral_5m_input_tokens")) if isinstance(creation, Mapping) else 0
    cache_write = w5m + w1h if w5m + w1h > 0 else _int(u.get("cache_creation_input_tokens"))
    details = u.get("output_tokens_details") or {}
    input_ = _int(u.get("input_tokens")) + cache_read + cache_write
    output = _int(u.get("output_tokens"))
    return _make(
        input_,
        output,
        None,
        method="anthropic",
        cache_read=cache_read,
        cache_write=cache_write,
        cache_write_1h=w1h,
        reasoning=_int(details.get("thinking_tokens")) if isinstance(details, Mapping) else 0,
    )


def _modality_count(details: Any, modality: str) -> int:
    if not isinstance(details, Sequence):
        return 0
    total = 0
    for item in details:
        if isinstance(item, Mapping) and str(item.get("modality", "")).upper().endswith(modality):
            total += _int(_get(item, "token_count", "tokenCount"))
    return total


def _from_gemini(u: Mapping[str, Any]) -> TokenUsage:
    """Gemini ``usageMetadata``: thoughts are *not* in ``candidates_token_count``."""
    thoughts = _int(_get(u, "thoughts_token_count", "thoughtsTokenCount"))
    input_ = _int(_get(u, "prompt_token_count", "promptTokenCount")) + _int(
        _get(u, "tool_use_prompt_token_count", "toolUsePromptTokenCount")
    )
    output = _int(_get(u, "candidates_token_count", "candidatesTokenCount")) + thoughts
    return _make(
        input_,
        output,
        _int(_get(u, "total_token_count", "totalTokenCount")),
        method="gemini",
        cache_read=_int(_get(u, "cached_content_token_count", "cachedContentTokenCount")),
        reasoning=thoughts,
        audio_in=_modality_count(_get(u, "prompt_tokens_details", "promptTokensDetails"), "AUDIO"),
        audio_out=_modality_count(
            _get(u, "candidates_tokens_details", "candidatesTokensDetails"), "AUDIO"
        ),
    )


def _from_bedrock_metrics(u: Mapping[str, Any]) -> TokenUsage:
    """Bedrock InvokeModel ``amazon-bedrock-invocationMetrics`` (counts exclude cache)."""
    cache_read = _int(u.get("cacheReadInputTokenCount"))
    cache_write = _int(u.get("cacheWriteInputTokenCount"))
    return _make(
        _int(u.get("inputTokenCount")) + cache_read + cache_write,
        _int(u.get("outputTokenCount")),
        None,
        method="bedrock",
        cache_read=cache_read,
        cache_write=cache_write,
    )


def _from_bedrock_converse(u: Mapping[str, Any]) -> TokenUsage:
    """Bedrock Converse ``usage``: ``inputTokens`` excludes cache reads and writes."""
    cache_read = _int(u.get("cacheReadInputTokens"))
    cache_write = _int(u.get("cacheWriteInputTokens"))
    return _make(
        _int(u.get("inputTokens")) + cache_read + cache_write,
        _int(u.get("outputTokens")),
        _int(u.get("totalTokens")),
        method="bedrock",
        cache_read=cache_read,
        cache_write=cache_write,
    )


def _from_ollama(u: Mapping[str, Any]) -> TokenUsage:
    return _make(
        _int(u.get("prompt_eval_count")), _int(u.get("eval_count")), None, method="ollama"
    )


def usage_from_mapping(raw: Mapping[str, Any]) -> TokenUsage | None:
    """Parse one usage dict of any known provider format, or None if unrecognised.

    The format is recognised by its keys, because the same key (``input_tokens``)
    means "uncached input" for Anthropic but "total input" for LangChain and OpenAI.
    """
    if not isinstance(raw, Mapping) or not raw:
        return None
    keys = raw.keys()
    if "input_token_details" in keys or "output_token_details" in keys:
        return _from_usage_metadata(raw)
    if "prompt_tokens" in keys or "completion_tokens" in keys or "input_tokens_details" in keys:
        return _from_openai(raw)
    if keys & {"prompt_token_count", "promptTokenCount", "candidates_token_count",
               "candidatesTokenCount", "total_token_count", "totalTokenCount"}:
        return _from_gemini(raw)
    if "inputTokenCount" in keys or "outputTokenCount" in keys:
        return _from_bedrock_metrics(raw)
    if "inputTokens" in keys or "outputTokens" in keys:
        return _from_bedrock_converse(raw)
    if "prompt_eval_count" in keys or "eval_count" in keys:
        return _from_ollama(raw)
    if keys & {"cache_read_input_tokens", "cache_creation_input_tokens", "cache_creation"}:
        return _from_anthropic(raw)
    if "input_tokens" in keys or "output_tokens" in keys:
        # total_tokens present -> LangChain UsageMetadata; else Anthropic without cache
        # fields. Without cache fields both mean the same numbers.
        if "total_tokens" in keys:
            return _from_usage_metadata(raw)
        return _from_anthropic(raw)
    return None


# Keys under response_metadata / generation_info holding a provider's raw usage.
_RAW_USAGE_KEYS = ("token_usage", "usage", "usage_metadata", "amazon-bedrock-invocationMetrics")


def _from_raw_metadata(meta: Mapping[str, Any] | None) -> TokenUsage | None:
    if not meta:
        return None
    for key in _RAW_USAGE_KEYS:
        value = meta.get(key)
        if isinstance(value, Mapping):
            parsed = usage_from_mapping(value)
            if parsed is not None:
                return parsed
        elif value is not None and hasattr(value, "model_dump"):  # SDK objects
            parsed = usage_from_mapping(value.model_dump())
            if parsed is not None:
                return parsed
    if "prompt_eval_count" in meta or "eval_count" in meta:  # Ollama: top level
        return _from_ollama(meta)
    return None


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
            return _from_usage_metadata(um)
        parsed = _from_raw_metadata(getattr(message, "response_metadata", None))
        if parsed is not None:
            return parsed
    return _from_raw_metadata(info)


def _cache_hit(um: Mapping[str, Any]) -> TokenUsage:
    base = _from_usage_metadata(um) if "input_tokens" in um else _EMPTY
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


def missing_stream_usage_hint(obj: Any, *, provider: str | None = None) -> str | None:
    """A user hint when an OpenAI-compatible *streamed* response carried no usage.

    ChatOpenAI sends ``stream_options.include_usage`` only when ``stream_usage`` is
    True, and it defaults to True only for the default OpenAI base URL, so a proxy,
    gateway or self-hosted server yields streamed messages without usage. Detect it
    from the result itself: a chunk (streamed) from ``model_provider == "openai"``
    (or ``provider``) whose usage is missing. Returns None when nothing is wrong.
    """
    pairs = _messages(obj)
    if not pairs or extract_usage(obj) is not None:
        return None
    streamed = False
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


def estimate_usage(
    prompts: Sequence[str], completions: Sequence[str], model: str | None = None
) -> TokenUsage:
    """Count tokens locally (see :mod:`.tokenizer`); re-exported here for convenience."""
    from configurable_agents.observability.facts.tokenizer import estimate_usage as _estimate

    return _estimate(prompts, completions, model)
