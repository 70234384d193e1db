"""What an error event really means: a failure, a pause, a handoff, or the client leaving.

LangGraph reports its control flow as ``on_chain_error`` (``GraphBubbleUp``), and Python
reports a stream the client stopped reading (``GeneratorExit``) or a cancelled task
(``CancelledError``) the same way. Only real errors make a run FAILED:

- ``GraphInterrupt`` (``interrupt()``): the graph waits for a human -> INTERRUPTED;
- ``ParentCommand`` (``Command(graph=Command.PARENT, goto=...)``): a handoff to the
  parent graph, a normal step -> FINISHED with the target in ``handoff_to``;
- ``GeneratorExit`` / ``CancelledError``: the caller stopped -> KILLED with a stop reason.

Also: which runs the handler must not log (a ``update_state`` edit is no invocation) and
which parent a run has when langchain-core forgot to pass it (``with_fallbacks``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from enum import Enum
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.runnables.config import var_child_runnable_config

from configurable_agents.names import StopReason

# The root chain LangGraph's ``update_state`` / ``bulk_update_state`` runs: a state edit.
STATE_EDIT_RUN_NAMES = frozenset({"LangGraphUpdateState", "LangGraphBulkUpdateState"})
FALLBACKS_RUN_NAME = "RunnableWithFallbacks"


class Flow(Enum):
    """What an error event means for the run it ends."""

    ERROR = "error"
    INTERRUPT = "interrupt"
    HANDOFF = "handoff"
    STOPPED = "stopped"


def classify(error: BaseException) -> Flow:
    """Failure, pause for a human, handoff to the parent graph, or the caller stopping."""
    if isinstance(error, GeneratorExit | asyncio.CancelledError):
        return Flow.STOPPED
    try:
        from langgraph.errors import GraphBubbleUp, GraphInterrupt, ParentCommand
    except ImportError:  # pragma: no cover - langgraph is a dependency
        return Flow.ERROR
    if isinstance(error, GraphInterrupt):
        return Flow.INTERRUPT
    if isinstance(error, ParentCommand):
        return Flow.HANDOFF
    if isinstance(error, GraphBubbleUp):  # future control flow: never a failure
        return Flow.HANDOFF
    return Flow.ERROR


def stop_reason(error: BaseException) -> str:
    """``cancelled`` for a cancelled task, ``closed_early`` for a stream left with break."""
    return StopReason.CANCELLED if isinstance(error, asyncio.CancelledError) else (
        StopReason.CLOSED_EARLY
    )


def handoff_target(error: BaseException) -> str | None:
    """The node(s) a ``ParentCommand`` goes to, as one short string (None when unknown)."""
    command = error.args[0] if error.args else None
    goto = getattr(command, "goto", None)
    if goto is None or goto == ():
        return None
    targets = goto if isinstance(goto, Sequence) and not isinstance(goto, str) else [goto]
    names = [str(getattr(t, "node", t)) for t in targets]
    return ",".join(names) or None


def contextual_parent(run_ids: Any, handler: Any) -> UUID | None:
    """The run langchain-core is inside of when it handed a child no parent id.

    ``RunnableWithFallbacks`` (and similar wrappers) set the child config, whose
    callback manager knows the parent run, in the ``var_child_runnable_config``
    context variable, but then call the child with the caller's original config, so
    our handler sees the child as a new root. LangSmith's tracer copes through its
    own tracing context (``set_config_context``); this reads the same variable. The
    parent counts only when this very handler tracks it, so unrelated roots stay roots.
    """
    config = var_child_runnable_config.get()
    callbacks = config.get("callbacks") if config else None
    if not isinstance(callbacks, BaseCallbackManager):
        return None
    parent = callbacks.parent_run_id
    if parent is None or parent not in run_ids:
        return None
    if not any(h is handler for h in callbacks.handlers):
        return None
    return parent
