"""One-line, credential-free descriptions of tracking-store errors for the read-side commands.

MLflow, requests and database drivers raise multi-line messages that often repeat the
tracking URI, password included; ``report`` and ``cleanup`` print one line with it masked.
Classify on :func:`flat_message` (the cause may sit at the end), print :func:`shorten` of it.
"""

from __future__ import annotations

from configurable_agents.config.schema import redact_uri

MAX_CHARS = 300


def flat_message(exc: BaseException, uri: str) -> str:
    """The whole message of ``exc`` on one line, with ``uri`` redacted."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return message.replace(uri, redact_uri(uri))


def shorten(message: str, limit: int = MAX_CHARS) -> str:
    return message if len(message) <= limit else message[:limit - 3] + "..."
