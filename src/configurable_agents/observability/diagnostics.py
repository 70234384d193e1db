"""Our own failures: counted, logged once per kind, never raised into the app.

Observability must never break the app, and a failure that repeats on every
invocation must not flood its logs either. Kinds are remembered in a bounded set
(hostile metadata can mint endless distinct messages, e.g. one per bad tenant id):
past the bound one last line says further warnings are suppressed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("configurable_agents.observability")

MAX_LOGGED_KINDS = 256
#: Set by a test suite (tests/conftest.py), like MLflow's ``is_testing()``: errors of our
#: own code (capture, facts, producers) are also recorded for the suite to fail the test.
TESTING_ENV = "CONFIGURABLE_AGENTS_TESTING"
#: Kinds that are bugs of ours, not a destination failing (those stay counted only).
OWN_CODE_KINDS = ("callback:", "facts", "dspy:")
_recorded: list[str] = []
_recorded_lock = threading.Lock()


def take_recorded_errors() -> list[str]:
    """Internal errors of our own code recorded under :data:`TESTING_ENV` (then cleared)."""
    with _recorded_lock:
        taken = list(_recorded)
        _recorded.clear()
    return taken


class Diagnostics:
    """Internal-error counter and log-once warnings, shared by the pipeline and its sinks."""

    def __init__(self, scrub: Callable[[str], str] = str, max_kinds: int = MAX_LOGGED_KINDS):
        self._scrub = scrub
        self._max_kinds = max_kinds
        self._lock = threading.Lock()
        self._kinds: set[str] = set()
        self._suppressed = False
        self.internal_errors = 0

    def warn_once(self, kind: str, message: str, *args: Any) -> None:
        """Log ``message`` the first time ``kind`` is seen (bounded memory)."""
        with self._lock:
            if kind in self._kinds:
                return
            if len(self._kinds) >= self._max_kinds:
                if self._suppressed:
                    return
                self._suppressed = True
                message, args = (
                    "configurable-agents: more than %d distinct warnings; further ones are "
                    "suppressed (see handler.stats() for the counters)",
                    (self._max_kinds,),
                )
            else:
                self._kinds.add(kind)
        logger.warning(message, *args)

    def internal_error(self, kind: str, exc: BaseException) -> None:
        """Count a failure of ours and log it once per kind; never raises."""
        with self._lock:
            self.internal_errors += 1
        if kind.startswith(OWN_CODE_KINDS) and os.environ.get(TESTING_ENV):
            with _recorded_lock:
                _recorded.append(f"{kind}: {type(exc).__name__}: {exc!r}"[:500])
        try:
            text = self._scrub(str(exc))
        except Exception:  # an exception whose __str__ raises
            text = "<unprintable>"
        self.warn_once(
            kind, "configurable-agents %s failed (counted, not raised): %s: %s",
            kind, type(exc).__name__, text,
        )

    def scrub(self, text: str) -> str:
        return self._scrub(text)
