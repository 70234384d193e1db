"""Local token counts for calls whose provider reported no usage.

tiktoken is exact for OpenAI models and a fair estimate for others. Its encodings
are downloaded on first use (``tiktoken.load.read_file`` -> ``requests.get`` with no
timeout) and cached under ``TIKTOKEN_CACHE_DIR`` (default: ``<tmp>/data-gym-cache``).
Offline that download fails or hangs, so each encoding is loaded lazily, once per
process, in a daemon thread joined with a short timeout (``LOAD_TIMEOUT_S``, env
``CONFIGURABLE_AGENTS_TIKTOKEN_TIMEOUT_S``). If it cannot be loaded we fall back to
``ceil(characters / 4)`` per text, log one warning, and never raise or hang.

To run offline with exact counts, pre-fill the cache (``TIKTOKEN_CACHE_DIR``) or call
:func:`register_encoding` with an ``tiktoken.Encoding`` you built.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from configurable_agents.observability.facts.token_usage import TokenUsage

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "CHARS_PER_TOKEN",
    "LOAD_TIMEOUT_S",
    "count_tokens",
    "encoding_name_for_model",
    "estimate_usage",
    "get_encoding",
    "register_encoding",
    "reset_cache",
]

logger = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
"""The character fallback: ``ceil(len(text) / 4)`` tokens, OpenAI's rule of thumb for English."""

LOAD_TIMEOUT_S = 3.0
"""Longest wait for one encoding load (a download attempt when it is not cached)."""

METHOD_CHARS = "chars/4"

# Models tokenised with o200k_base; everything else uses cl100k_base.
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "gpt-oss", "o1", "o3",
                   "o4")

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding | None] = {}  # None: could not be loaded
_warned = False


def encoding_name_for_model(model: str | None) -> str:
    """``o200k_base`` for gpt-4o / 4.1 / 5 and the o-series, ``cl100k_base`` otherwise."""
    name = (model or "").lower().rsplit("/", 1)[-1]
    if name.startswith("ft:"):
        name = name[3:]
    return "o200k_base" if name.startswith(_O200K_PREFIXES) else "cl100k_base"


def _timeout() -> float:
    raw = os.environ.get("CONFIGURABLE_AGENTS_TIKTOKEN_TIMEOUT_S")
    try:
        return float(raw) if raw else LOAD_TIMEOUT_S
    except ValueError:
        return LOAD_TIMEOUT_S


def _load(name: str, timeout: float) -> tiktoken.Encoding | None:
    """tiktoken.get_encoding in a daemon thread, so a hung download cannot hang us."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            import tiktoken

            box["encoding"] = tiktoken.get_encoding(name)
        except BaseException as exc:  # any failure means "fall back"
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"tiktoken-load-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if "encoding" in box:
        return box["encoding"]
    reason = box.get("error") or f"no answer within {timeout:g}s"
    logger.debug("tiktoken encoding %s unavailable: %r", name, reason)
    return None


def get_encoding(name: str) -> tiktoken.Encoding | None:
    """The tiktoken encoding ``name``, loaded once per process; None if it cannot be loaded."""
    global _warned
    if name in _encodings:
        return _encodings[name]
    with _lock:  # one loader per process; others wait at most the load timeout
        if name in _encodings:
            return _encodings[name]
        encoding = _load(name, _timeout())
        _encodings[name] = encoding
        if encoding is None and not _warned:
            _warned = True
            logger.warning(
                "tiktoken encoding %r could not be loaded (offline? set TIKTOKEN_CACHE_DIR to a "
                "directory holding the cached encoding files); token counts that providers do "
                "not report are estimated as ceil(characters / %d).",
                name,
                CHARS_PER_TOKEN,
            )
        return encoding


def register_encoding(encoding: tiktoken.Encoding, name: str | None = None) -> None:
    """Use ``encoding`` for ``name`` (default: its own name) instead of loading it."""
    with _lock:
        _encodings[name or encoding.name] = encoding


def reset_cache() -> None:
    """Forget loaded encodings and the warning (for tests, or after filling the cache dir)."""
    global _warned
    with _lock:
        _encodings.clear()
        _warned = False


def _chars_estimate(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def count_tokens(text: str, model: str | None = None) -> tuple[int, str]:
    """(token count, method) for ``text``; method is ``tiktoken:<encoding>`` or ``chars/4``."""
    name = encoding_name_for_model(model)
    encoding = get_encoding(name)
    if encoding is None:
        return _chars_estimate(text), METHOD_CHARS
    # disallowed_special=() : user text containing "<|endoftext|>" must count, not raise.
    return len(encoding.encode(text, disallowed_special=())), f"tiktoken:{name}"


def estimate_usage(
    prompts: Sequence[str], completions: Sequence[str], model: str | None = None
) -> TokenUsage:
    """Estimated usage of one call from its prompt and completion texts (estimated=True).

    Counts the texts only (no per-message framing tokens), so chat calls are slightly
    under-counted; good enough for a cost estimate when the provider reports nothing.
    """
    name = encoding_name_for_model(model)
    encoding = get_encoding(name)

    def count(texts: Sequence[str]) -> int:
        if encoding is None:
            return sum(_chars_estimate(t) for t in texts)
        return sum(len(encoding.encode(t, disallowed_special=())) for t in texts)

    input_tokens, output_tokens = count(prompts), count(completions)
    return TokenUsage(
        input=input_tokens,
        output=output_tokens,
        total=input_tokens + output_tokens,
        estimated=True,
        method=f"tiktoken:{name}" if encoding is not None else METHOD_CHARS,
    )
