"""The shared half of the recorder: the run-id index, the workflow tree, and small helpers.

Each LangChain event family (chains, models, tools) is a mixin over :class:`RunTree`
in its own module; :mod:`.recorder` composes them. Everything here runs on the
caller's thread, so it is O(1) per event: dict and list updates, no I/O.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from langgraph.callbacks import GraphCallbackHandler

from configurable_agents.observability.capture.control_flow import (
    STATE_EDIT_RUN_NAMES,
    contextual_parent,
)
from configurable_agents.observability.capture.records import (
    LLMCallRecord,
    NodeRecord,
    ToolCallRecord,
    WorkflowRecord,
    now_ns,
)

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

NODE_METRICS_EVENT = "ca_node_metrics"
_RETRY_TAG_PREFIX = "retry:attempt:"


def _never_raise(method: F) -> F:
    """Observability must never break the app: count and log-once internal errors."""

    @functools.wraps(method)
    def wrapper(self: RunTree, *args: Any, **kwargs: Any) -> Any:
        try:
            # A caller's config={"run_id": "..."} may be any string: ids stay UUIDs inside.
            if not isinstance(kwargs.get("run_id", _NO_ID), UUID | _NoId):
                kwargs["run_id"] = _as_uuid(kwargs["run_id"])
            if not isinstance(kwargs.get("parent_run_id"), UUID | None):
                kwargs["parent_run_id"] = _as_uuid(kwargs["parent_run_id"])
            return method(self, *args, **kwargs)
        except Exception as exc:
            self._internal_error(f"callback:{method.__name__}", exc)
            return None

    return wrapper  # type: ignore[return-value]


class _NoId:
    """Marks an event called without a ``run_id`` keyword."""


_NO_ID = _NoId()


def _retry_attempt(tags: Sequence[str] | None) -> int:
    """The attempt number ``Runnable.with_retry()`` tags child runs with (1 when absent)."""
    if tags:
        for tag in tags:
            if tag.startswith(_RETRY_TAG_PREFIX):
                try:
                    return int(tag[len(_RETRY_TAG_PREFIX) :])
                except ValueError:
                    return 1
    return 1


class _Entry:
    """Where a LangChain run belongs: its workflow, innermost node, and own record.

    ``attempts`` counts the children a ``with_fallbacks`` run started (None for other runs):
    each one after the first is a fallback. Such a run also keeps ``outer`` (the parent id
    langchain-core gave it, which its children wrongly inherit) and ``last_call`` (the
    latest model call of the current attempt: the one that answered if the attempt
    succeeds). ``fallback`` is the innermost ``with_fallbacks`` run this run is inside.
    """

    __slots__ = ("attempts", "fallback", "last_call", "node", "outer", "record", "workflow")

    def __init__(
        self,
        workflow: WorkflowRecord,
        node: NodeRecord | None,
        record: LLMCallRecord | ToolCallRecord | None = None,
        parent: _Entry | None = None,
    ) -> None:
        self.workflow = workflow
        self.node = node
        self.record = record
        self.attempts: int | None = None
        self.outer: UUID | None = None
        self.last_call: LLMCallRecord | None = None
        self.fallback: _Entry | None = (
            None if parent is None else parent if parent.attempts is not None else parent.fallback
        )


class RunTree(GraphCallbackHandler):
    """The run-id index and tree bookkeeping every event family shares.

    Subclasses connect the hooks: :meth:`_workflow_started` (caller thread, must be
    O(1)), :meth:`_workflow_finished` (caller thread, hands the finished record off)
    and :meth:`_internal_error` (counts and logs a failure of ours; never raises).
    """

    run_inline = True
    raise_error = False

    def __init__(
        self,
        *,
        enabled: bool = True,
        workflow_name: str | None = None,
        workflow_version: str | None = None,
    ) -> None:
        self._enabled = enabled
        self.workflow_name = workflow_name
        self.workflow_version = workflow_version
        self._runs: dict[UUID, _Entry] = {}
        # Runs we deliberately do not log (a state edit) and their descendants.
        self._ignored: set[UUID] = set()

    # ---- hooks ----------------------------------------------------------------------------

    def _workflow_started(self, workflow: WorkflowRecord) -> None:  # pragma: no cover
        """A root invocation began (caller thread: O(1), no I/O)."""

    def _workflow_finished(self, workflow: WorkflowRecord) -> None:  # pragma: no cover
        """A root invocation ended; the record is complete and no longer touched here."""

    def _internal_error(self, kind: str, exc: BaseException) -> None:  # pragma: no cover
        logger.debug("configurable-agents %s failed: %r", kind, exc)

    @property
    def active_runs(self) -> int:
        """LangChain runs currently tracked (bounded: entries leave when their root ends)."""
        return len(self._runs)

    def recording(self, run_id: UUID) -> tuple[WorkflowRecord, NodeRecord | None] | None:
        """The workflow (and node) a LangChain run in flight records into, if ours.

        The public lookup for producers that nest their own records in a LangGraph node
        (the DSPy recorder), instead of reading the run index itself.
        """
        entry = self._runs.get(run_id)
        return None if entry is None else (entry.workflow, entry.node)

    # ---- cheap skipping when disabled ---------------------------------------------------------

    def _skip_when_disabled(self) -> bool:
        return not self._enabled

    # langchain-core checks these before every event; ignore_agent also gates tool events.
    ignore_llm = ignore_chain = ignore_agent = ignore_retriever = property(_skip_when_disabled)
    ignore_chat_model = ignore_retry = ignore_custom_event = property(_skip_when_disabled)

    # ---- tree bookkeeping -------------------------------------------------------------------

    def _start_workflow(
        self,
        run_id: UUID,
        kind: str,
        name: str | None,
        metadata: dict[str, Any] | None,
        tags: list[str] | None,
        inputs: Any,
    ) -> WorkflowRecord:
        metadata = metadata or {}
        workflow = WorkflowRecord(
            run_id=run_id,
            start_ns=now_ns(),
            name=_first_text(metadata.get("workflow_name"), self.workflow_name, name) or kind,
            version=_first_text(metadata.get("workflow_version"), self.workflow_version),
            kind=kind,
            metadata=dict(metadata),
            tags=list(tags or ()),
            inputs=_shallow_copy(inputs),
            configured_name=_first_text(self.workflow_name, name) or kind,
            configured_version=_first_text(self.workflow_version),
        )
        workflow.run_ids.append(run_id)
        self._runs[run_id] = _Entry(workflow, None)
        self._workflow_started(workflow)
        return workflow

    def _finish_workflow(self, workflow: WorkflowRecord) -> None:
        workflow.end_ns = now_ns()
        for node in workflow.all_nodes():
            if node.status == "RUNNING":  # never ended: the caller left before it did
                node.status = "KILLED"
                node.end_ns = workflow.end_ns
        runs = self._runs
        for rid in workflow.run_ids:
            runs.pop(rid, None)
        workflow.run_ids.clear()
        workflow.node_index.clear()
        self._workflow_finished(workflow)

    def _direct(self, workflow: WorkflowRecord) -> NodeRecord:
        """The pseudo-node collecting calls made outside any graph node."""
        if workflow.direct is None:
            workflow.direct = NodeRecord(
                node_id=workflow.name, run_id=workflow.run_id, start_ns=workflow.start_ns
            )
        return workflow.direct

    def _parent(self, parent_run_id: UUID | None) -> _Entry | None:
        """The tracked parent of a starting run (counting ``with_fallbacks`` attempts).

        langchain-core's ``RunnableWithFallbacks`` calls each candidate with the *caller's*
        config, so the candidate names the fallbacks run's own parent (or none at the root)
        as its parent; the fallbacks run is in the ``var_child_runnable_config`` context.
        """
        runs = self._runs
        if not runs:
            return None
        context = contextual_parent(runs, self)
        if parent_run_id is None:
            if context is None:
                return None
            parent_run_id = context
        elif context is not None and context != parent_run_id:
            wrapper = runs.get(context)
            if wrapper is not None and wrapper.attempts is not None and (
                wrapper.outer == parent_run_id
            ):
                parent_run_id = context  # a fallback inside a chain, a node or a subgraph
        entry = runs.get(parent_run_id)
        if entry is not None and entry.attempts is not None:
            entry.attempts += 1
            entry.last_call = None
            if entry.attempts > 1:
                entry.workflow.fallbacks += 1
        return entry

    def _ignore(self, run_id: UUID, parent_run_id: UUID | None, name: str | None) -> bool:
        """True for a run not to log: a state edit, or anything inside one."""
        if parent_run_id is None and name in STATE_EDIT_RUN_NAMES:
            self._ignored.add(run_id)
            return True
        if parent_run_id is not None and parent_run_id in self._ignored:
            self._ignored.add(run_id)
            return True
        return False

    def _ended_ignored(self, run_id: UUID) -> bool:
        if run_id in self._ignored:
            self._ignored.discard(run_id)
            return True
        return False

    def _count_retry(self, workflow: WorkflowRecord, node: NodeRecord | None) -> None:
        if node is not None:
            node.retries += 1
        else:
            workflow.retries_outside_nodes += 1


_PROMPT_TEMPLATE_NAMES = frozenset({"ChatPromptTemplate", "PromptTemplate"})


def _serialized_name(serialized: Mapping[str, Any] | None) -> str | None:
    if not serialized:
        return None
    name = serialized.get("name")
    if name:
        return str(name)
    ids = serialized.get("id")
    if isinstance(ids, list) and ids:
        return str(ids[-1])
    return None


def _shallow_copy(value: Any) -> Any:
    """Freeze the top level of a state dict so later in-place mutation can't change the log."""
    if isinstance(value, dict):
        return dict(value)
    return value


def _first_text(*candidates: Any) -> str | None:
    """The first candidate that is set and printable: a metadata value whose ``__str__``
    raises costs that field only (the next candidate names the workflow), never the run."""
    for value in candidates:
        if value is None or value == "":
            continue
        try:
            text = value if isinstance(value, str) else str(value)
        except Exception:
            continue
        if isinstance(text, str) and text:
            return text
    return None


def _as_uuid(run_id: Any) -> UUID:
    """The workflow's id as a UUID: a caller's ``config={"run_id": "..."}`` may be any string.

    A UUID string maps to itself; anything else to a stable UUID5 of its text, so ids,
    trace ids and spool names stay well-formed (the events still find the run by its key).
    """
    if isinstance(run_id, UUID):
        return run_id
    try:
        return UUID(str(run_id))
    except (ValueError, TypeError, AttributeError):
        return uuid5(NAMESPACE_URL, f"configurable-agents:{run_id!s}")
