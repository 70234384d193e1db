"""Turn arbitrary app state into JSON and text that MLflow can store, without ever raising.

Runs on the exporter thread. State may hold anything a LangGraph app puts in it:
messages, pydantic models, dataclasses, bytes, datetimes, Decimals, sets, numpy
arrays, cyclic references. Each gets a faithful, bounded representation.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 32
TRUNCATION_MARKER = "\n...[truncated by configurable-agents: {original} chars, kept {kept}]"


def to_jsonable(value: Any, _depth: int = 0, _seen: set[int] | None = None) -> Any:
    """A JSON-serializable copy of ``value`` (cycles and depth bounded)."""
    if value is None or isinstance(value, bool | int | str):
        return value.replace("\x00", "\\u0000") if isinstance(value, str) else value
    if isinstance(value, float):
        return (
            value if value == value and value not in (float("inf"), float("-inf")) else str(value)
        )
    if _depth >= MAX_DEPTH:
        return f"<max depth: {type(value).__name__}>"
    seen = _seen if _seen is not None else set()
    marker = id(value)
    if marker in seen:
        return f"<cycle: {type(value).__name__}>"
    seen.add(marker)
    try:
        return _convert(value, _depth + 1, seen)
    finally:
        seen.discard(marker)


def is_secret_key(key: str) -> bool:
    """Keys whose values are credentials by name (api_key, token, secret, password, ...)."""
    return bool(_SECRET_KEY.search(key))


_SECRET_KEY = re.compile(
    r"api[_\-]?key|secret|password|passwd|credential|authorization|private[_\-]?key|token$",
    re.IGNORECASE,
)
SECRET_MASK = "***"


def _convert(value: Any, depth: int, seen: set[int]) -> Any:
    if isinstance(value, Mapping):
        return {
            _key(k): SECRET_MASK
            if is_secret_key(_key(k)) and value[k]
            else to_jsonable(v, depth, seen)
            for k, v in list(value.items())
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else list(value)
        return [to_jsonable(v, depth, seen) for v in items]
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return f"<bytes: {len(data)} bytes>"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if type(value).__name__ in ("SecretStr", "SecretBytes"):
        return SECRET_MASK
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, depth, seen)
    message = _message_dict(value)
    if message is not None:
        return to_jsonable(message, depth, seen)
    if hasattr(value, "model_dump") and callable(value.model_dump):
        try:
            return to_jsonable(value.model_dump(), depth, seen)
        except Exception:
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name, None), depth, seen)
            for f in dataclasses.fields(value)
        }
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        try:
            return to_jsonable(value.tolist(), depth, seen)
        except Exception:
            pass
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def _key(key: Any) -> str:
    return key if isinstance(key, str) else str(key)


def _message_dict(value: Any) -> dict[str, Any] | None:
    """LangChain messages as ``{"role", "content", ...}`` (without heavy metadata)."""
    msg_type = getattr(value, "type", None)
    if not isinstance(msg_type, str) or not hasattr(value, "content"):
        return None
    out: dict[str, Any] = {"role": msg_type, "content": value.content}
    tool_calls = getattr(value, "tool_calls", None)
    if tool_calls:
        out["tool_calls"] = tool_calls
    name = getattr(value, "name", None)
    if name:
        out["name"] = name
    tool_call_id = getattr(value, "tool_call_id", None)
    if tool_call_id:
        out["tool_call_id"] = tool_call_id
    return out


def dump_json(value: Any) -> str:
    """An already JSON-able tree (facts content) as indented text."""
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def to_json_text(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False, indent=2)


def truncate(text: str, limit: int) -> tuple[str, bool]:
    """Cap ``text`` to ``limit`` chars with a marker recording the original size."""
    if len(text) <= limit:
        return text, False
    marker = TRUNCATION_MARKER.format(original=len(text), kept=limit)
    return text[: max(0, limit - len(marker))] + marker, True


def content_text(content: Any) -> str:
    """Text of a message content (string or list of content blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping):
                if block.get("type") == "text" or "text" in block:
                    parts.append(str(block.get("text", "")))
                else:
                    parts.append(f"<{block.get('type', 'block')}>")
        return "\n".join(parts)
    return str(content)


def render_messages(messages: Any) -> str:
    """Messages as the model saw them, one block per message with its role marked."""
    blocks = []
    for message in messages or []:
        role = getattr(message, "type", "message")
        text = content_text(getattr(message, "content", message))
        tool_calls = getattr(message, "tool_calls", None)
        if tool_calls:
            calls = ", ".join(  # to_jsonable masks secret-named args (a "password")
                f"{c.get('name')}({json.dumps(to_jsonable(c.get('args')))})" for c in tool_calls
            )
            text = f"{text}\n<tool calls: {calls}>" if text else f"<tool calls: {calls}>"
        blocks.append(f"[{role}]\n{text}")
    return "\n\n".join(blocks)
