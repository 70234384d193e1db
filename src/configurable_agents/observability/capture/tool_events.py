"""Tool, retriever, retry and custom events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from configurable_agents.observability.capture.control_flow import (
    Flow,
    classify,
    stop_reason,
)
from configurable_agents.observability.capture.records import (
    ToolCallRecord,
    now_ns,
)
from configurable_agents.observability.capture.tree import (
    NODE_METRICS_EVENT,
    RunTree,
    _Entry,
    _never_raise,
    _serialized_name,
)


class ToolEvents(RunTree):
    """Tool, retriever, retry and custom events."""

    # ---- tools and retrievers -----------------------------------------------------------------

    def _start_tool(
        self,
        kind: str,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        tool_input: Any,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
    ) -> None:
        if self._ignore(run_id, parent_run_id, name):
            return
        parent = self._parent(parent_run_id)
        if parent is None:
            workflow = self._start_workflow(
                run_id, kind, name, metadata, tags, {"input": tool_input}
            )
            node = None
        else:
            workflow, node = parent.workflow, parent.node
            workflow.run_ids.append(run_id)
        call = ToolCallRecord(
            run_id=run_id, name=name, start_ns=now_ns(), input=tool_input, kind=kind
        )
        (node or self._direct(workflow)).tool_calls.append(call)
        self._runs[run_id] = _Entry(workflow, node, call, parent=parent)

    def _end_tool(self, run_id: UUID, output: Any, error: BaseException | None) -> None:
        entry = self._runs.get(run_id)
        if entry is None or not isinstance(entry.record, ToolCallRecord):
            self._ended_ignored(run_id)
            return
        flow = classify(error) if error is not None else None
        if flow is Flow.HANDOFF or flow is Flow.INTERRUPT:
            error = None  # a tool that hands off (Command.PARENT) or pauses did not fail
        entry.record.output = output
        entry.record.error = error
        entry.record.end_ns = now_ns()
        if entry.workflow.run_id == run_id:
            workflow = entry.workflow
            workflow.outputs = output
            if flow is Flow.STOPPED and error is not None:
                workflow.status, workflow.stop_reason = "KILLED", stop_reason(error)
            else:
                workflow.status = "FAILED" if error is not None else "FINISHED"
                workflow.error = error
            self._finish_workflow(workflow)

    @_never_raise
    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or _serialized_name(serialized) or "tool"
        self._start_tool(
            "tool",
            run_id,
            parent_run_id,
            name,
            inputs if inputs is not None else input_str,
            tags,
            metadata,
        )

    @_never_raise
    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_tool(run_id, output, None)

    @_never_raise
    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_tool(run_id, None, error)

    @_never_raise
    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or _serialized_name(serialized) or "retriever"
        self._start_tool("retriever", run_id, parent_run_id, name, query, tags, metadata)

    @_never_raise
    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_tool(run_id, documents, None)

    @_never_raise
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_tool(run_id, None, error)

    # ---- retries and custom events --------------------------------------------------------------

    @_never_raise
    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        entry = self._runs.get(run_id)
        if entry is not None:
            self._count_retry(entry.workflow, entry.node)

    @_never_raise
    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if name != NODE_METRICS_EVENT or not isinstance(data, Mapping):
            return
        entry = self._runs.get(run_id)
        if entry is None:
            return
        target = entry.node or self._direct(entry.workflow)
        for key, value in data.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                target.custom_metrics[str(key)] = target.custom_metrics.get(str(key), 0) + value


