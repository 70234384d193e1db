"""Chain events: graph invocations, LangGraph nodes (with RetryPolicy reruns), subgraphs."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langgraph.constants import TAG_HIDDEN

from configurable_agents.names import InterruptKind
from configurable_agents.observability.capture.control_flow import (
    FALLBACKS_RUN_NAME,
    Flow,
    classify,
    handoff_target,
    stop_reason,
)
from configurable_agents.observability.capture.records import (
    NodeRecord,
    WorkflowRecord,
    now_ns,
)
from configurable_agents.observability.capture.tree import (
    _PROMPT_TEMPLATE_NAMES,
    RunTree,
    _Entry,
    _never_raise,
    _retry_attempt,
    _serialized_name,
    _shallow_copy,
)


class ChainEvents(RunTree):
    """Graph invocations, LangGraph nodes (with RetryPolicy reruns) and subgraphs.

    A task LangGraph hides (``langsmith:hidden``: the ``__start__`` task that runs a
    conditional edge from START, e.g. ``create_swarm``'s router) is no node: LangGraph's
    own ``tasks`` stream and debug output omit it. Whatever runs inside it (a router that
    calls a model) still counts, on the enclosing node or the workflow.
    """

    # ---- chain events ---------------------------------------------------------------------

    @_never_raise
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or _serialized_name(serialized)
        if self._ignore(run_id, parent_run_id, name):
            return
        parent = self._parent(parent_run_id)
        if parent is None:
            self._start_workflow(run_id, "chain", name, metadata, tags, inputs)
            self._mark_fallbacks(run_id, name, parent_run_id)
            return
        workflow, node = parent.workflow, parent.node
        md = metadata or {}
        graph_node = md.get("langgraph_node")
        checkpoint_ns = md.get("langgraph_checkpoint_ns")
        if (
            graph_node is not None
            and name == graph_node
            and not (tags and TAG_HIDDEN in tags)
            and (node is None or node.node_id != graph_node or node.checkpoint_ns != checkpoint_ns)
        ):
            node = self._start_node(workflow, node, run_id, graph_node, md, inputs)
        else:
            attempt = _retry_attempt(tags)
            if attempt > 1:
                self._count_retry(workflow, node)
            if name in _PROMPT_TEMPLATE_NAMES and serialized:
                (node or self._direct(workflow)).prompt_templates.append(serialized)
        workflow.run_ids.append(run_id)
        self._runs[run_id] = _Entry(workflow, node, parent=parent)
        self._mark_fallbacks(run_id, name, parent_run_id)

    def _mark_fallbacks(self, run_id: UUID, name: str | None, outer: UUID | None) -> None:
        """Count the children of a ``with_fallbacks`` run: each after the first is a fallback."""
        if name == FALLBACKS_RUN_NAME:
            entry = self._runs[run_id]
            entry.attempts = 0
            entry.outer = outer

    def _fallbacks_answered(self, entry: _Entry) -> None:
        """A ``with_fallbacks`` run returned: mark the model call that answered after a failure."""
        call = entry.last_call
        if entry.attempts is not None and entry.attempts > 1 and call is not None and (
            call.error is None
        ):
            call.fallback_answer = True

    def _start_node(
        self,
        workflow: WorkflowRecord,
        enclosing: NodeRecord | None,
        run_id: UUID,
        node_id: str,
        md: Mapping[str, Any],
        inputs: Any,
    ) -> NodeRecord:
        key = (
            enclosing.run_id if enclosing else None,
            md.get("langgraph_checkpoint_ns"),
            node_id,
            md.get("langgraph_step"),
        )
        previous = workflow.node_index.get(key)
        if previous is not None and previous.status == "FAILED":
            # LangGraph RetryPolicy: the same task runs again after a chain error.
            previous.retries += 1
            previous.status = "RUNNING"
            previous.error = None
            previous.run_id = run_id
            return previous
        node = NodeRecord(
            node_id=node_id,
            run_id=run_id,
            start_ns=now_ns(),
            step=md.get("langgraph_step"),
            checkpoint_ns=md.get("langgraph_checkpoint_ns"),
            inputs=_shallow_copy(inputs),
        )
        node_params = md.get("ca_node_params")
        if isinstance(node_params, Mapping):
            node.params.update(node_params)
        node_artifacts = md.get("ca_node_artifacts")
        if isinstance(node_artifacts, Mapping):
            for art_name, art_text in node_artifacts.items():
                with contextlib.suppress(Exception):  # an unprintable value loses only itself
                    node.artifacts[str(art_name)] = str(art_text)
        (enclosing.children if enclosing else workflow.nodes).append(node)
        workflow.node_index[key] = node
        return node

    @_never_raise
    def on_chain_end(
        self,
        outputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        entry = self._runs.get(run_id)
        if entry is None:
            self._ended_ignored(run_id)
            return
        workflow, node = entry.workflow, entry.node
        if entry.attempts is not None:
            self._fallbacks_answered(entry)
        if workflow.run_id == run_id:
            workflow.outputs = _shallow_copy(outputs)
            workflow.status = "FINISHED"
            self._finish_workflow(workflow)
        elif node is not None and node.run_id == run_id:
            node.outputs = _shallow_copy(outputs)
            node.end_ns = now_ns()
            node.status = "FINISHED"

    @_never_raise
    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        entry = self._runs.get(run_id)
        if entry is None:
            self._ended_ignored(run_id)
            return
        workflow, node = entry.workflow, entry.node
        flow = classify(error)
        if workflow.run_id == run_id:
            self._end_workflow_with(workflow, error, flow)
        elif node is not None and node.run_id == run_id:
            node.end_ns = now_ns()
            if flow is Flow.INTERRUPT:
                node.status = "INTERRUPTED"
                workflow.interrupted = True
                workflow.interrupt_kind = InterruptKind.INTERRUPT
                if node.node_id not in workflow.interrupted_at:
                    workflow.interrupted_at.append(node.node_id)
            elif flow is Flow.HANDOFF:
                node.status = "FINISHED"
                node.handoff_to = handoff_target(error)
            elif flow is Flow.STOPPED:
                node.status = "KILLED"
            else:
                node.status = "FAILED"
                node.error = error

    def _end_workflow_with(
        self, workflow: WorkflowRecord, error: BaseException, flow: Flow
    ) -> None:
        if flow is Flow.STOPPED:
            workflow.status = "KILLED"
            workflow.stop_reason = stop_reason(error)
        elif flow is Flow.INTERRUPT:
            workflow.interrupted = True
            workflow.interrupt_kind = workflow.interrupt_kind or InterruptKind.INTERRUPT
            workflow.status = "FINISHED"
        elif flow is Flow.HANDOFF:
            workflow.status = "FINISHED"
        else:
            workflow.status = "FAILED"
            workflow.error = error
        self._finish_workflow(workflow)

    # ---- LangGraph lifecycle (langgraph.callbacks.GraphCallbackHandler) ---------------------

    @_never_raise
    def on_interrupt(self, event: Any) -> None:
        """The root graph paused: ``interrupt()`` or a static breakpoint (no error event)."""
        entry = self._runs.get(event.run_id) if event.run_id is not None else None
        if entry is None or entry.workflow.run_id != event.run_id:
            return
        workflow = entry.workflow
        workflow.interrupted = True
        status = getattr(event, "status", None)
        if status in (InterruptKind.BEFORE, InterruptKind.AFTER):
            workflow.interrupt_kind = status
            if not workflow.interrupted_at:
                workflow.interrupted_at = _last_step_nodes(workflow)
        else:
            workflow.interrupt_kind = workflow.interrupt_kind or InterruptKind.INTERRUPT

    def on_resume(self, event: Any) -> None:
        """A resumed graph is a new invocation: its own events tell how it ends."""


def _last_step_nodes(workflow: WorkflowRecord) -> list[str]:
    """The top-level nodes of the last step that ran: where a static breakpoint paused."""
    steps = [n.step for n in workflow.nodes if isinstance(n.step, int)]
    if not steps:
        return []
    last = max(steps)
    return list(dict.fromkeys(n.node_id for n in workflow.nodes if n.step == last))
