"""Bounded label values: every label may take at most ``cap`` distinct values per process.

A Prometheus series exists per distinct label set, so one label fed free text (a model
name from a proxy, a team typed by hand) can exhaust the server. Values past the cap are
folded into :data:`OTHER` and ``configurable_agents_label_values_folded_total`` says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

OTHER = "other"
MAX_VALUE_CHARS = 128


class LabelBudget:
    """Remembers the first ``cap`` values seen per label name; folds the rest."""

    def __init__(self, on_fold: Callable[[str], None]) -> None:
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._on_fold = on_fold

    def fold(self, label: str, value: str, cap: int, *, known: bool = False) -> str:
        """``value`` itself while the label has room for it, else :data:`OTHER`.

        A ``known`` value (a configured workflow name) is never folded and takes no room,
        so unknown values can never starve it.
        """
        # Lone surrogates (from os.fsdecode, broken JSON) cannot be encoded and would fail
        # every scrape: keep them as visible escapes.
        value = value[:MAX_VALUE_CHARS].encode("utf-8", "backslashreplace").decode("utf-8")
        if known:
            return value
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if value in seen:
                return value
            if len(seen) < cap:
                seen.add(value)
                return value
        self._on_fold(label)
        return OTHER

    def distinct(self, label: str) -> int:
        with self._lock:
            return len(self._seen.get(label, ()))
