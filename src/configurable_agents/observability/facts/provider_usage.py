"""Provider usage dicts -> :class:`TokenUsage`, one reader per provider format.

Providers report usage in different places and with different meanings. These
readers convert every format to one semantic, LangChain's ``UsageMetadata`` one:

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

:mod:`.usage` decides *which* of these dicts to read for a LangChain object; this
module only knows what each dict means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from configurable_agents.observability.facts.token_usage import (
    METHOD_USAGE_METADATA,
    TokenUsage,
)

__all__ = [
    "from_raw_metadata",
    "from_usage_metadata",
    "usage_from_mapping",
]


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


def from_usage_metadata(um: Mapping[str, Any]) -> TokenUsage:
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
        return from_usage_metadata(raw)
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
            return from_usage_metadata(raw)
        return _from_anthropic(raw)
    return None


# Keys under response_metadata / generation_info holding a provider's raw usage.
_RAW_USAGE_KEYS = ("token_usage", "usage", "usage_metadata", "amazon-bedrock-invocationMetrics")


def from_raw_metadata(meta: Mapping[str, Any] | None) -> TokenUsage | None:
    """Usage from a ``response_metadata`` / ``generation_info`` dict, or None if it has none."""
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
