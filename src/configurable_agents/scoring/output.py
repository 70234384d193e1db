"""Which part of an app's result a scorer grades."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage


def extract_output(value: Any, output_key: str | None = None) -> Any:
    """The answer to score: ``output_key`` of a dict, a message's text, else the value."""
    if output_key is not None and isinstance(value, Mapping):
        return value.get(output_key)
    if isinstance(value, BaseMessage):
        return value.text if isinstance(value.text, str) else value.content
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list) and value["messages"]:
        return extract_output(value["messages"][-1])
    return value
