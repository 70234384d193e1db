"""Prompts, responses and tool payloads as GenAI-convention span attributes (opt-in).

Only used when ``observability.otel.capture_content`` is on. Messages follow the
conventions' JSON shape (``[{"role": ..., "parts": [{"type": "text", "content": ...}]}]``),
mapped from the fact tree's OpenAI-shaped messages, which are already redacted at the
facts boundary; here they are only capped, so one huge prompt cannot blow a collector's
request limit.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from configurable_agents.observability.facts.model import CallFacts
from configurable_agents.observability.facts.serialization import content_text

MAX_CONTENT_CHARS = 64_000


def clean(text: str) -> str:
    """Capped text."""
    if len(text) > MAX_CONTENT_CHARS:
        text = text[:MAX_CONTENT_CHARS] + f"...[truncated {len(text) - MAX_CONTENT_CHARS} chars]"
    return text


def input_messages(call: CallFacts) -> str:
    """``gen_ai.input.messages`` of one model call (the first prompt of a batch)."""
    if call.input_messages:
        items = [_message(m) for m in call.input_messages[0]]
    else:
        items = [{"role": "user", "parts": [_text(p)]} for p in call.prompts]
    return clean(json.dumps(items, ensure_ascii=False, default=str))


def output_messages(call: CallFacts) -> str:
    """``gen_ai.output.messages``: one entry per generation of the first prompt."""
    items: list[dict[str, Any]] = []
    first = call.generations[0] if call.generations else ()
    for index, generation in enumerate(first):
        message = generation.get("message")
        item = _message(message) if isinstance(message, Mapping) else {
            "role": "assistant", "parts": [_text(generation.get("text", ""))]
        }
        if index < len(call.finish_reasons):
            item["finish_reason"] = call.finish_reasons[index]
        items.append(item)
    return clean(json.dumps(items, ensure_ascii=False, default=str))


def payload(value: Any) -> str:
    """A tool's arguments or result as JSON text."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return clean(text)


def _text(content: Any) -> dict[str, Any]:
    return {"type": "text", "content": content_text(content)}


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI-shaped message dict -> GenAI ``{"role", "parts"}``."""
    role = str(message.get("role", "user"))
    parts: list[dict[str, Any]] = []
    text = content_text(message.get("content") or "")
    if role == "tool":
        parts.append({"type": "tool_call_response", "id": message.get("tool_call_id"),
                      "response": text})
    elif text:
        parts.append({"type": "text", "content": text})
    for tool_call in message.get("tool_calls") or ():
        if not isinstance(tool_call, Mapping):
            continue
        function = tool_call.get("function") or {}
        arguments: Any = function.get("arguments")
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments)
        parts.append({"type": "tool_call", "id": tool_call.get("id"),
                      "name": function.get("name"), "arguments": arguments})
    return {"role": role, "parts": parts}
