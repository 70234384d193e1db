"""Text and JSON-able content of a workflow, cleaned once: redacted, no lone surrogates.

:class:`Cleaner` is the one privacy pass: every string the fact tree holds goes through
:meth:`Cleaner.text` (a value whose ``__str__`` raises becomes a marker, alone; a lone
surrogate becomes U+FFFD) and, with ``redact_pii``, the workflow's redactor. Content
trees go through :meth:`Cleaner.tree`, keys included. The model-call helpers give chat
inputs and outputs in the OpenAI message shape (what MLflow's chat view renders, and
what the OpenTelemetry sink maps to GenAI parts), with secret-named tool arguments
masked even inside the JSON *string* that shape uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from configurable_agents.observability.facts.serialization import to_jsonable

Redact = Callable[[str], str]


def safe_str(value: object, limit: int | None = None) -> str:
    """``str(value)`` that never raises (a hostile ``__str__``) and holds no lone surrogate."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:
        text = f"<unprintable {type(value).__name__}>"
    if not isinstance(text, str):  # a __str__ returning a non-str
        text = f"<unprintable {type(value).__name__}>"
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:limit] if limit is not None else text


class Cleaner:
    """Redacts (when a redactor is set) and sanitizes every string once."""

    def __init__(self, redact: Redact | None) -> None:
        self.redact = redact

    def text(self, value: object, limit: int | None = None) -> str:
        text = safe_str(value)
        if self.redact is not None:
            text = safe_str(self.redact(text))
        return text[:limit] if limit is not None else text

    def opt(self, value: object) -> str | None:
        return None if value is None else self.text(value)

    def tree(self, value: Any) -> Any:
        """A JSON-able tree (from :func:`to_jsonable`) with every string cleaned."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.tree(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k): self.tree(v) for k, v in value.items()}
        return value

    def content(self, value: Any) -> Any:
        """Any value (state, messages, documents) as a cleaned JSON-able tree."""
        if value is None:
            return None
        return self.tree(to_jsonable(value))


# ---- model calls ----------------------------------------------------------------------------


def chat_inputs(messages: Any) -> list[list[Any]]:
    """Each prompt's messages in the OpenAI shape (tool-call arguments masked)."""
    from langchain_core.messages.utils import convert_to_openai_messages

    return [mask_arguments(convert_to_openai_messages(batch)) for batch in messages]


def generations(response: Any) -> list[list[dict[str, Any]]]:
    """Per prompt, per generation: ``{"message": {...}, "finish_reason"}`` or ``{"text"}``."""
    from langchain_core.messages.utils import convert_to_openai_messages

    out = []
    for batch in getattr(response, "generations", None) or []:
        choices: list[dict[str, Any]] = []
        for generation in batch:
            message = getattr(generation, "message", None)
            info = getattr(generation, "generation_info", None) or {}
            if message is not None:
                choices.append({"message": mask_arguments(convert_to_openai_messages(message)),
                                "finish_reason": info.get("finish_reason")})
            else:
                choices.append({"text": getattr(generation, "text", "")})
        out.append(choices)
    return out


def mask_arguments(value: Any) -> Any:
    """Secret-named tool-call arguments masked: the OpenAI shape carries them as a JSON
    *string* (``function.arguments``), which key-based masking alone never looks into."""
    if isinstance(value, list):
        return [mask_arguments(v) for v in value]
    if not isinstance(value, dict):
        return to_jsonable(value)
    out = {k: mask_arguments(v) for k, v in to_jsonable(value).items()}
    arguments = out.get("arguments")
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            return out
        out["arguments"] = json.dumps(to_jsonable(parsed))
    return out


def response_details(response: Any) -> tuple[list[str], str | None]:
    """Finish (stop) reasons of the first prompt's generations and the provider's response id."""
    reasons: list[str] = []
    response_id = None
    batches = getattr(response, "generations", None) or [[]]
    for generation in batches[0] if batches else []:
        info = getattr(generation, "generation_info", None) or {}
        message = getattr(generation, "message", None)
        metadata: Mapping[str, Any] = getattr(message, "response_metadata", None) or {}
        reason = (
            info.get("finish_reason")
            or metadata.get("finish_reason")
            or metadata.get("stop_reason")
            or info.get("stop_reason")
        )
        if reason:
            reasons.append(safe_str(reason))
        if response_id is None:
            response_id = metadata.get("id")  # the provider's (message.id is LangChain's run id)
    return reasons, (safe_str(response_id) if response_id else None)


def tool_output(output: Any) -> Any:
    """A tool's ToolMessage is shown as its content; documents and other values as they are."""
    if getattr(output, "type", None) == "tool" and hasattr(output, "content"):
        return output.content
    return output
