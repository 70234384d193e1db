"""Backend health for the MLflow sink: after a failed write, skip MLflow until a probe succeeds.

Without it every queued workflow would wait out the writer's retries while the
backend is down; with it they go straight to the spool and one cheap probe per
backoff step finds the backend again. The backoff is capped low (``MAX_BACKOFF_S``)
and jittered, so the first probe after a recovery comes within seconds (not the
30 s a long outage used to reach) and many processes do not probe in lockstep.
"""

from __future__ import annotations

import random
import time

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 4.0


class Breaker:
    def __init__(self) -> None:
        self.down_since: float | None = None
        self.failures = 0
        self.next_probe = 0.0

    @property
    def up(self) -> bool:
        return self.down_since is None

    def trip(self) -> None:
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
        self.failures += 1
        step = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** min(self.failures - 1, 6))
        self.next_probe = now + step * random.uniform(0.5, 1.0)

    def probe_due(self) -> bool:
        return time.monotonic() >= self.next_probe

    def reset(self) -> None:
        self.down_since = None
        self.failures = 0
