"""A timeout the user passes is a promise: run a sink's flush/close on a helper thread.

A sink's own ``flush(t)`` may overrun ``t`` whatever it intends: an HTTP call in
flight cannot be interrupted, an exporter's retry loop may not look at the clock
(OpenTelemetry's OTLP exporter backs off past ``force_flush``'s timeout). So the
worker runs it on a short-lived daemon thread and waits at most ``t`` plus a small
margin; if it is not done by then, the answer is False (not everything landed),
and the helper finishes (or not) on its own. A workflow it was still writing is
kept by the sink's own policy (MLflow: spooled, claimed by this process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

MARGIN_S = 0.05


def call_within(fn: Callable[[float], bool], timeout: float, name: str) -> bool:
    """``fn(timeout)``'s answer if it returns within ``timeout`` (+ margin), else False.

    An exception counts as False and is re-raised to the caller when it came in time.
    """
    timeout = max(0.0, timeout)
    outcome: list[bool] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(bool(fn(timeout)))
        except BaseException as exc:
            error.append(exc)

    helper = threading.Thread(target=run, name=f"configurable-agents-{name}-deadline",
                              daemon=True)
    helper.start()
    helper.join(timeout + MARGIN_S)
    if helper.is_alive():
        return False
    if error:
        raise error[0]
    return outcome[0]
