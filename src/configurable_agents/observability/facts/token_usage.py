"""The :class:`TokenUsage` value: tokens of one or more LLM calls, in LangChain's semantic.

It lives alone so that every module that produces usage (the provider readers in
:mod:`.provider_usage`, the LangChain-object walk in :mod:`.usage`, the local
counter in :mod:`.tokenizer`) and every module that consumes it (the price book)
can import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "EMPTY_USAGE",
    "METHOD_LLM_CACHE",
    "METHOD_LLM_OUTPUT",
    "METHOD_USAGE_METADATA",
    "TokenUsage",
]

# Method names recorded on TokenUsage.method (one word per source, joined by "+" when summed).
METHOD_USAGE_METADATA = "usage_metadata"
METHOD_LLM_OUTPUT = "llm_output"
METHOD_LLM_CACHE = "llm_cache"


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
        return self == EMPTY_USAGE

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


EMPTY_USAGE = TokenUsage()
"""The zero value: no tokens, no method."""
