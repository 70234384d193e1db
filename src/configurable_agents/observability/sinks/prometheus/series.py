"""A bound on the total number of series the Prometheus sink exposes.

Per-label caps (labels.py) do not bound the product: four labels of 50 values each are
6 million combinations, and every histogram label set is ``buckets + 4`` series
(``_bucket`` per bound and ``+Inf``, ``_sum``, ``_count``, ``_created``). So every new
label set is admitted against one process-wide budget; past it, the label set's
free-form values (attribution, model, node, error type, unknown workflows) become
``other`` while the values that carry meaning and have a small fixed domain (status,
token type, operation, a known workflow name) stay, so an overflowed workflow still
counts under its own name. Overflow label sets are few (the product of those fixed
domains) and are always admitted, so nothing is lost: it is only less detailed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from configurable_agents.observability.sinks.prometheus.labels import OTHER


class SeriesBudget:
    """Admits new label sets while their series fit ``limit``; else their overflow form."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._admitted: set[tuple[str, tuple[str, ...]]] = set()
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """Series admitted so far (overflow label sets included)."""
        with self._lock:
            return self._used

    def admit(self, family: str, values: Sequence[str], keep: Sequence[bool],
              cost: int) -> tuple[str, ...]:
        """The label values to use: ``values`` if admitted, else the overflow form.

        ``keep[i]`` marks a value that survives overflow (fixed domain or known name);
        ``cost`` is the number of series one label set of ``family`` makes.
        """
        wanted = tuple(values)
        with self._lock:
            if (family, wanted) in self._admitted:
                return wanted
            if self._used + cost <= self.limit:
                self._admitted.add((family, wanted))
                self._used += cost
                return wanted
            overflow = tuple(v if k else OTHER for v, k in zip(wanted, keep, strict=True))
            if (family, overflow) not in self._admitted:
                self._admitted.add((family, overflow))
                self._used += cost
            return overflow
