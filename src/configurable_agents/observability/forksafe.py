"""Restart background workers in a child process after ``fork()``, as the OTel SDK does.

A forked child inherits the parent's queues and locks but none of its threads; a lock a
parent thread held at fork time stays held forever in the child. Every worker registers
here; after a fork, each one in the child gets fresh queues, locks and counters and
starts its threads again on first use, so the child's workflows drain. What was queued
in the parent stays the parent's to write.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from typing import Protocol


class ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_live: weakref.WeakSet[ForkAware] = weakref.WeakSet()  # type: ignore[type-var]
_lock = threading.Lock()
_hooked = False


def register(worker: ForkAware) -> None:
    """Have ``worker._after_fork_in_child()`` run in every child forked from now on."""
    global _hooked
    with _lock:
        _live.add(worker)
        if not _hooked and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_reset_all)
            _hooked = True


def _reset_all() -> None:
    global _lock
    _lock = threading.Lock()  # the parent may have held it
    for worker in list(_live):
        with contextlib.suppress(Exception):  # never break the child over observability
            worker._after_fork_in_child()
