"""The in-memory run tree the handler builds: WorkflowRecord -> NodeRecord -> LLMCallRecord.

Records hold *references* captured on the caller thread (messages, responses,
state) plus timestamps. Everything expensive (usage extraction, pricing,
serialization, redaction) happens later, on the exporter thread, from these.
Each record is written by the callbacks of its own invocation only; the
exporter reads it after the root run has ended, so no locks are needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID


def now_ns() -> int:
    return time.time_ns()


@dataclass(slots=True)
class LLMCallRecord:
    """One chat-model or completion-model call."""

    run_id: UUID
    start_ns: int
    messages: Any = None  # list[list[BaseMessage]] for chat models
    prompts: list[str] | None = None  # completion models
    invocation_params: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    end_ns: int | None = None
    first_token_ns: int | None = None
    response: Any = None  # LLMResult
    error: BaseException | None = None
    retry_attempt: int = 1
    # This call answered a `with_fallbacks` after an earlier candidate failed.
    fallback_answer: bool = False


@dataclass(slots=True)
class ToolCallRecord:
    run_id: UUID
    name: str
    start_ns: int
    input: Any = None
    output: Any = None
    end_ns: int | None = None
    error: BaseException | None = None
    kind: str = "tool"  # "tool" or "retriever"


@dataclass(slots=True)
class NodeRecord:
    """One executed graph node (all its attempts), or a subgraph node with children."""

    node_id: str
    run_id: UUID
    start_ns: int
    step: int | None = None
    checkpoint_ns: str | None = None
    end_ns: int | None = None
    status: str = "RUNNING"  # FINISHED, FAILED, INTERRUPTED, KILLED
    error: BaseException | None = None
    # Where Command(graph=Command.PARENT, goto=...) sent control: a handoff, not a failure.
    handoff_to: str | None = None
    inputs: Any = None
    outputs: Any = None
    llm_calls: list[LLMCallRecord] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    children: list[NodeRecord] = field(default_factory=list)
    retries: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    custom_metrics: dict[str, float] = field(default_factory=dict)
    prompt_templates: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class WorkflowRecord:
    """One root invocation: becomes the MLflow parent run and its trace."""

    run_id: UUID
    start_ns: int
    name: str
    version: str | None
    kind: str  # "graph", "chain", "llm", "tool"
    metadata: dict[str, Any]
    tags: list[str]
    inputs: Any = None
    outputs: Any = None
    end_ns: int | None = None
    status: str = "RUNNING"  # FINISHED, FAILED, KILLED
    error: BaseException | None = None
    error_traceback: str | None = None
    interrupted: bool = False
    # interrupt() / interrupt_before / interrupt_after, and the node(s) it paused at.
    interrupt_kind: str | None = None
    interrupted_at: list[str] = field(default_factory=list)
    # With status KILLED: closed_early (the client left stream()) or cancelled.
    stop_reason: str | None = None
    # How many times a `with_fallbacks` moved on to its next runnable.
    fallbacks: int = 0
    nodes: list[NodeRecord] = field(default_factory=list)
    # Calls and tools made outside any node (plain LCEL chain, bare model call).
    direct: NodeRecord | None = None
    retries_outside_nodes: int = 0
    run_ids: list[UUID] = field(default_factory=list)
    # (enclosing node id, checkpoint ns, node id, step) -> node: finds RetryPolicy reruns.
    node_index: dict[tuple[Any, ...], NodeRecord] = field(default_factory=dict)
    # Caller-side context a sink takes in Sink.on_start (e.g. the app's active
    # OpenTelemetry span), keyed by sink name; read later on that sink's worker.
    sink_state: dict[str, Any] = field(default_factory=dict)
    # The name and version given in code (handler arguments, else the graph's own name),
    # never from invocation metadata: what a bounded label (Prometheus) can trust.
    configured_name: str = ""
    configured_version: str | None = None
    # Written by the exporter thread only.
    mlflow_run_id: str | None = None
    experiment_id: str | None = None

    def all_nodes(self) -> list[NodeRecord]:
        """Every node in the tree, depth first (subgraph children after their node)."""
        out: list[NodeRecord] = []
        stack = list(reversed(self.nodes))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out

    @property
    def duration_s(self) -> float:
        end = self.end_ns if self.end_ns is not None else now_ns()
        return max(0, end - self.start_ns) / 1e9
