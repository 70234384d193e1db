"""Prompts, responses and tool payloads as GenAI-convention span attributes (opt-in).

Only used when ``observability.otel.capture_content`` is on. Messages follow the
conventions' JSON shape (``[{"role": ..., "parts": [{"type": "text", "content": ...}]}]``);
every text passes through the workflow's redactor first when ``redact_pii`` is on, and
is capped so one huge prompt cannot blow a collector's request limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from configurable_agents.observability.facts.assemble import CallFacts
from configurable_agents.observability.facts.serialization import content_text, to_jsonable

MAX_CONTENT_CHARS = 64_000

_ROLES = {
    "human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"
}

Redact = Callable[[str], str] | None


def clean(text: str, redact: Redact) -> str:
    """Redacted (when asked) and capped text."""
    if redact is not None:
        text = redact(text)
    if len(text) > MAX_CONTENT_CHARS:
        text = text[:MAX_CONTENT_CHARS] + f"...[truncated {len(text) - MAX_CONTENT_CHARS} chars]"
    return text


def input_messages(facts: CallFacts, redact: Redact) -> str:
    """``gen_ai.input.messages`` of one model call (the first prompt of a batch)."""
    call = facts.call
    if call.messages:
        items = [_message(m) for m in call.messages[0]]
    else:
        items = [{"role": "user", "parts": [_text(p)]} for p in (call.prompts or [])]
    return clean(json.dumps(items, ensure_ascii=False, default=str), redact)


def output_messages(facts: CallFacts, finish_reasons: list[str], redact: Redact) -> str:
    """``gen_ai.output.messages``: one entry per generation of the first prompt."""
    items: list[dict[str, Any]] = []
    response = facts.call.response
    generations = (getattr(response, "generations", None) or [[]])[0]
    for index, generation in enumerate(generations):
        message = getattr(generation, "message", None)
        item = _message(message) if message is not None else {
            "role": "assistant", "parts": [_text(getattr(generation, "text", ""))]
        }
        if index < len(finish_reasons):
            item["finish_reason"] = finish_reasons[index]
        items.append(item)
    return clean(json.dumps(items, ensure_ascii=False, default=str), redact)


def payload(value: Any, redact: Redact) -> str:
    """A tool's arguments or result as JSON text."""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(to_jsonable(value), ensure_ascii=False, default=str)
    return clean(text, redact)


def _text(content: Any) -> dict[str, Any]:
    return {"type": "text", "content": content_text(content)}


def _message(message: Any) -> dict[str, Any]:
    role = _ROLES.get(str(getattr(message, "type", "")), str(getattr(message, "type", "user")))
    parts: list[dict[str, Any]] = []
    text = content_text(getattr(message, "content", ""))
    if role == "tool":
        parts.append(
            {"type": "tool_call_response", "id": getattr(message, "tool_call_id", None),
             "response": text}
        )
    elif text:
        parts.append({"type": "text", "content": text})
    for tool_call in _tool_calls(message):
        parts.append(
            {"type": "tool_call", "id": tool_call.get("id"), "name": tool_call.get("name"),
             "arguments": tool_call.get("args")}
        )
    return {"role": role, "parts": parts}


def _tool_calls(message: Any) -> Iterable[dict[str, Any]]:
    calls = getattr(message, "tool_calls", None) or []
    return [c for c in calls if isinstance(c, dict)]
