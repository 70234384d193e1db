"""An exception -> ErrorFacts: names, redacted message and traceback, never raising."""

from __future__ import annotations

import traceback

from configurable_agents.observability.facts.content import Cleaner, safe_str
from configurable_agents.observability.facts.model import ErrorFacts


def error_facts(error: BaseException | None, clean: Cleaner) -> ErrorFacts | None:
    if error is None:
        return None
    message = safe_str(error)
    try:
        stack = "".join(traceback.format_exception(error))
    except Exception:  # an exception whose __str__ raises
        stack = f"{type(error).__name__}: {message}"
    return ErrorFacts(
        type=type(error).__name__,
        qualname=type(error).__qualname__,
        message=clean.text(message),
        traceback=clean.text(stack),
    )
