"""Chat-model and completion-model events: one LLMCallRecord per call, the result snapshotted."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from configurable_agents.observability.capture.control_flow import (
    Flow,
    classify,
    stop_reason,
)
from configurable_agents.observability.capture.records import (
    LLMCallRecord,
    now_ns,
)
from configurable_agents.observability.capture.snapshot import snapshot_result
from configurable_agents.observability.capture.tree import (
    RunTree,
    _Entry,
    _never_raise,
    _retry_attempt,
    _serialized_name,
)


class ModelEvents(RunTree):
    """One LLMCallRecord per model call; the result is snapshotted on end."""

    # ---- model events ---------------------------------------------------------------------

    def _start_llm(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
        serialized: dict[str, Any] | None,
        messages: Any = None,
        prompts: list[str] | None = None,
    ) -> None:
        name = kwargs.get("name") or _serialized_name(serialized)
        if self._ignore(run_id, parent_run_id, name):
            return
        parent = self._parent(parent_run_id)
        if parent is None:
            inputs = {"messages": messages} if messages is not None else {"prompts": prompts}
            workflow = self._start_workflow(run_id, "llm", name, metadata, tags, inputs)
            node = None
        else:
            workflow, node = parent.workflow, parent.node
            workflow.run_ids.append(run_id)
        attempt = _retry_attempt(tags)
        if attempt > 1 and parent is not None:
            self._count_retry(workflow, node)
        call = LLMCallRecord(
            run_id=run_id,
            start_ns=now_ns(),
            messages=messages,
            prompts=prompts,
            invocation_params=kwargs.get("invocation_params"),
            metadata=metadata,
            name=name,
            retry_attempt=attempt,
        )
        (node or self._direct(workflow)).llm_calls.append(call)
        entry = self._runs[run_id] = _Entry(workflow, node, call, parent=parent)
        wrapper = entry.fallback
        while wrapper is not None:  # the latest call of each enclosing with_fallbacks attempt
            wrapper.last_call = call
            wrapper = wrapper.fallback

    @_never_raise
    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start_llm(
            run_id, parent_run_id, tags, metadata, kwargs, serialized, messages=messages
        )

    @_never_raise
    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start_llm(run_id, parent_run_id, tags, metadata, kwargs, serialized, prompts=prompts)

    @_never_raise
    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        entry = self._runs.get(run_id)
        record = entry.record if entry is not None else None
        if isinstance(record, LLMCallRecord) and record.first_token_ns is None:
            record.first_token_ns = now_ns()

    @_never_raise
    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        entry = self._runs.get(run_id)
        if entry is None or not isinstance(entry.record, LLMCallRecord):
            self._ended_ignored(run_id)
            return
        # Snapshot the messages: a later LLM-cache hit would rewrite the shared generations.
        entry.record.response = snapshot_result(response)
        entry.record.end_ns = now_ns()
        if entry.workflow.run_id == run_id:
            entry.workflow.outputs = response
            entry.workflow.status = "FINISHED"
            self._finish_workflow(entry.workflow)

    @_never_raise
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        entry = self._runs.get(run_id)
        if entry is None or not isinstance(entry.record, LLMCallRecord):
            self._ended_ignored(run_id)
            return
        flow = classify(error)
        entry.record.error = error if flow is Flow.ERROR else None
        entry.record.end_ns = now_ns()
        if entry.workflow.run_id == run_id:
            workflow = entry.workflow
            if flow is Flow.STOPPED:
                workflow.status, workflow.stop_reason = "KILLED", stop_reason(error)
            else:
                workflow.status, workflow.error = "FAILED", error
            self._finish_workflow(workflow)

