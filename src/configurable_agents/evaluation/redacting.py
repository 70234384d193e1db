"""Evaluation values through the handler's redactor before anything is written.

Dataset rows and model outputs carry the same e-mails, keys and card numbers as live
traffic; the example runs are redacted by the handler, and everything the evaluation
writes beside them (table cells, expectations, rationales, LoggedModel and Prompt
Registry texts) goes through the same ``redact(str) -> str`` here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_DEPTH = 100  # deeper values are replaced, never recursed into
_TOO_DEEP = "<TOO_DEEP>"


def redact_value(value: Any, redact: Callable[[str], str], _depth: int = 0) -> Any:
    """``value`` with every string (keys included) redacted; numbers and booleans kept."""
    if _depth > MAX_DEPTH:
        return _TOO_DEEP
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): redact_value(v, redact, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, redact, _depth + 1) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


_IDENTIFIERS = frozenset({"run_id", "trace_id"})  # ours, read back by report: never redacted


def redact_row(row: dict[str, Any], redact: Callable[[str], str]) -> dict[str, Any]:
    """One table row: text cells redacted (MLflow ids kept), numbers as they are."""
    return {k: redact(v) if isinstance(v, str) and k not in _IDENTIFIERS else v
            for k, v in row.items()}
