"""DspyRecorder: DSPy's own callback events -> the same WorkflowRecord trees as LangChain's.

DSPy calls a ``BaseCallback`` around every ``Module.__call__``, ``LM.__call__``, tool,
``Evaluate.__call__`` and optimizer ``compile``, with a ``call_id`` per call and the
caller's id in the ``ACTIVE_CALL_ID`` context variable (propagated into the threads
of DSPy's parallel evaluator). That is enough to rebuild the tree:

- a call with no recorded parent starts a workflow: a program call (kind ``dspy``),
  an ``Evaluate`` (kind ``evaluation``), a ``compile`` (kind ``optimization``) or a bare
  LM call (kind ``llm``); it becomes one MLflow parent run;
- a module called inside one becomes a nested run named after its attribute
  (``generate_answer``, ``cot.predict``), the class name when it has none; each
  example an ``Evaluate`` runs and each program call an optimizer makes (its trials)
  is such a nested run;
- LM calls and tool calls are recorded on the innermost module's node.

When DSPy runs inside a LangGraph node that our LangChain handler is recording,
there is no new workflow: the DSPy LM and tool calls go onto that node's record, so
the graph's one run holds them and no token is counted twice.

Like the LangChain recorder this is the hot path: dict and list updates, no I/O;
the handler's hooks hand a finished workflow to the pipeline.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar
from uuid import UUID, uuid4

from dspy.utils.callback import BaseCallback
from dspy.utils.callback_context import ACTIVE_CALL_ID

from configurable_agents.names import Metric
from configurable_agents.observability.capture.dspy_calls import finish_lm_call, start_lm_call
from configurable_agents.observability.capture.records import (
    LLMCallRecord,
    NodeRecord,
    ToolCallRecord,
    WorkflowRecord,
    now_ns,
)
from configurable_agents.observability.capture.tree import RunTree

__all__ = ["KIND_DSPY", "KIND_EVALUATION", "KIND_OPTIMIZATION", "DspyRecorder", "WorkflowSink"]

KIND_DSPY = "dspy"
KIND_EVALUATION = "evaluation"
KIND_OPTIMIZATION = "optimization"

F = TypeVar("F", bound=Callable[..., Any])


class WorkflowSink(Protocol):
    """The public listener seam a producer feeds: ``MLflowCallbackHandler`` implements it.

    ``workflow_started`` (caller thread, O(1)) and ``workflow_finished`` (the record is
    complete) hand a recorded workflow to the pipeline; ``internal_error`` counts a
    failure of the producer's own, never raising.
    """

    @property
    def enabled(self) -> bool: ...

    def workflow_started(self, workflow: WorkflowRecord) -> None: ...

    def workflow_finished(self, workflow: WorkflowRecord) -> None: ...

    def internal_error(self, kind: str, exc: BaseException) -> None: ...


class _Scope:
    """Where one DSPy call's records go, and whether the call owns the workflow."""

    __slots__ = ("lm", "names", "node", "owns_node", "root", "shared", "workflow")

    def __init__(
        self,
        workflow: WorkflowRecord,
        node: NodeRecord | None,
        *,
        root: bool = False,
        owns_node: bool = False,
        shared: bool = False,
        names: Mapping[int, str] | None = None,
    ) -> None:
        self.workflow = workflow
        self.node = node
        self.root = root  # this call started the workflow: its end finishes it
        self.owns_node = owns_node  # this call started ``node``: its end closes it
        self.shared = shared  # a LangGraph node's record, or a scope opened by attach()
        self.names = names or {}
        self.lm: tuple[LLMCallRecord, Any] | None = None


def _never_raise(method: F) -> F:
    """Observability must never break the program: count and log-once internal errors."""

    @functools.wraps(method)
    def wrapper(self: DspyRecorder, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            self.sink.internal_error(f"dspy:{method.__name__}", exc)
            return None

    return wrapper  # type: ignore[return-value]


def _run_id(call_id: str) -> UUID:
    try:
        return UUID(hex=call_id)
    except (TypeError, ValueError):
        return uuid4()


def _sub_module_names(module: Any, prefix: str = "") -> dict[int, str]:
    """``id(sub-module) -> attribute path`` (``generate_answer``, ``cot.predict``)."""
    names: dict[int, str] = {}
    walk = getattr(module, "named_sub_modules", None)
    if not callable(walk):
        return names
    for name, sub in walk():
        path = name.removeprefix("self").lstrip(".")
        if path and id(sub) not in names:
            names[id(sub)] = f"{prefix}{path}" if prefix else path
    return names


def _direct(workflow: WorkflowRecord) -> NodeRecord:
    """The pseudo-node of calls made outside any node (as the LangChain recorder does)."""
    if workflow.direct is None:
        workflow.direct = NodeRecord(
            node_id=workflow.name, run_id=workflow.run_id, start_ns=workflow.start_ns
        )
    return workflow.direct


class DspyRecorder(BaseCallback):
    """A DSPy callback that records into ``sink`` (an ``MLflowCallbackHandler``)."""

    def __init__(
        self,
        sink: WorkflowSink,
        *,
        workflow_name: str | None = None,
        workflow_version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.sink = sink
        self.workflow_name = workflow_name
        self.workflow_version = workflow_version
        self.metadata = dict(metadata or {})
        self._calls: dict[str, _Scope] = {}
        self._attached: ContextVar[_Scope | None] = ContextVar(
            f"dspy_recorder_scope_{id(self)}", default=None
        )

    @property
    def active_calls(self) -> int:
        """DSPy calls in flight (bounded: entries leave when their call ends)."""
        return len(self._calls)

    # ---- workflows opened by the caller (track_optimization) -------------------------------

    def begin_workflow(
        self, name: str, kind: str, *, inputs: Any = None, metadata: Mapping[str, Any] | None = None
    ) -> WorkflowRecord:
        """Open a workflow that DSPy calls made under :meth:`attach` are recorded into."""
        workflow = self._new_workflow(uuid4(), kind, name, inputs, metadata)
        self.sink.workflow_started(workflow)
        return workflow

    @contextmanager
    def attach(self, workflow: WorkflowRecord) -> Iterator[None]:
        """Record top-level DSPy calls of this context into ``workflow``.

        An ``Evaluate`` or ``compile`` called directly here *is* the workflow (its
        examples or trials become its nested runs); a program call becomes a node.
        """
        token = self._attached.set(_Scope(workflow, None, shared=True))
        try:
            yield
        finally:
            self._attached.reset(token)

    def end_workflow(
        self, workflow: WorkflowRecord, *, outputs: Any = None, error: BaseException | None = None
    ) -> None:
        """Close a workflow opened with :meth:`begin_workflow` and hand it to the pipeline."""
        workflow.outputs = outputs
        workflow.status = "FAILED" if error is not None else "FINISHED"
        workflow.error = error
        workflow.end_ns = now_ns()
        self.sink.workflow_finished(workflow)

    # ---- DSPy events ----------------------------------------------------------------------------

    @_never_raise
    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if not self.sink.enabled:
            return
        parent = self._parent()
        kwargs = inputs.get("kwargs") or {}
        args = inputs.get("args") or ()
        call_inputs = {**({"args": list(args)} if args else {}), **kwargs}
        if parent is None:
            name = self.workflow_name or type(instance).__name__
            workflow = self._new_workflow(_run_id(call_id), KIND_DSPY, name, call_inputs)
            self._calls[call_id] = _Scope(
                workflow, None, root=True, names=_sub_module_names(instance)
            )
            self.sink.workflow_started(workflow)
            return
        if parent.shared and parent.node is not None:  # inside a LangGraph node: flatten
            self._calls[call_id] = _Scope(parent.workflow, parent.node, shared=True)
            return
        name = parent.names.get(id(instance)) or type(instance).__name__
        node = self._start_node(parent, _run_id(call_id), name, call_inputs)
        if id(instance) in parent.names:
            names = parent.names
        else:  # a program run by Evaluate or an optimizer: name its modules from here
            names = _sub_module_names(instance, prefix=f"{name}." if parent.node else "")
        self._calls[call_id] = _Scope(parent.workflow, node, owns_node=True, names=names)

    @_never_raise
    def on_module_end(
        self, call_id: str, outputs: Any | None, exception: Exception | None = None
    ) -> None:
        self._end(call_id, outputs, exception)

    @_never_raise
    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if not self.sink.enabled:
            return
        parent = self._parent()
        record, state = start_lm_call(_run_id(call_id), instance, inputs)
        if parent is None:
            name = self.workflow_name or str(getattr(instance, "model", None) or "lm")
            workflow = self._new_workflow(record.run_id, "llm", name, inputs.get("messages"))
            scope = _Scope(workflow, None, root=True)
            self.sink.workflow_started(workflow)
        else:
            scope = _Scope(parent.workflow, parent.node, shared=True)
        (scope.node or _direct(scope.workflow)).llm_calls.append(record)
        scope.lm = (record, state)
        self._calls[call_id] = scope

    @_never_raise
    def on_lm_end(
        self, call_id: str, outputs: dict[str, Any] | None, exception: Exception | None = None
    ) -> None:
        scope = self._calls.get(call_id)
        if scope is None or scope.lm is None:
            return
        finish_lm_call(scope.lm[0], scope.lm[1], outputs, exception)
        self._end(call_id, outputs, exception)

    @_never_raise
    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if not self.sink.enabled:
            return
        parent = self._parent()
        if parent is None:
            return  # a tool called outside any program: nothing to attach it to
        tool = ToolCallRecord(
            run_id=_run_id(call_id),
            name=str(getattr(instance, "name", None) or type(instance).__name__),
            start_ns=now_ns(),
            input=dict(inputs),
        )
        (parent.node or _direct(parent.workflow)).tool_calls.append(tool)
        scope = _Scope(parent.workflow, parent.node, shared=True)
        scope.lm = (tool, None)  # type: ignore[assignment]
        self._calls[call_id] = scope

    @_never_raise
    def on_tool_end(
        self, call_id: str, outputs: dict[str, Any] | None, exception: Exception | None = None
    ) -> None:
        scope = self._calls.pop(call_id, None)
        if scope is None or scope.lm is None:
            return
        tool = scope.lm[0]
        tool.end_ns = now_ns()
        tool.output = outputs
        tool.error = exception

    @_never_raise
    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        program = inputs.get("program")
        label = f"evaluate.{type(program).__name__}" if program is not None else "evaluate"
        self._start_operation(call_id, KIND_EVALUATION, label, program)

    @_never_raise
    def on_evaluate_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        scope = self._calls.get(call_id)
        score = getattr(outputs, "score", None)
        if scope is not None and isinstance(score, int | float):
            if scope.owns_node and scope.node is not None:
                scope.node.custom_metrics[Metric.SCORE] = float(score)
            elif scope.root:
                scope.workflow.metadata.setdefault("ca_metrics", {})[Metric.SCORE] = float(score)
        self._end(call_id, outputs, exception)

    @_never_raise
    def on_compile_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        label = f"optimize.{type(instance).__name__}"
        self._start_operation(call_id, KIND_OPTIMIZATION, label, inputs.get("student"))

    @_never_raise
    def on_compile_end(
        self, call_id: str, outputs: Any | None, exception: Exception | None = None
    ) -> None:
        self._end(call_id, None, exception)

    # ---- tree bookkeeping -----------------------------------------------------------------------

    def _new_workflow(
        self,
        run_id: UUID,
        kind: str,
        name: str,
        inputs: Any,
        metadata: Mapping[str, Any] | None = None,
    ) -> WorkflowRecord:
        return WorkflowRecord(
            run_id=run_id,
            start_ns=now_ns(),
            name=name,
            version=self.workflow_version,
            kind=kind,
            metadata={**self.metadata, **(metadata or {})},
            tags=[],
            inputs=inputs,
        )

    def _start_node(
        self, parent: _Scope, run_id: UUID, node_id: str, inputs: Any
    ) -> NodeRecord:
        node = NodeRecord(node_id=node_id, run_id=run_id, start_ns=now_ns(), inputs=inputs)
        # list.append is atomic: the parallel evaluator's threads add siblings safely.
        (parent.node.children if parent.node is not None else parent.workflow.nodes).append(node)
        return node

    def _start_operation(self, call_id: str, kind: str, label: str, program: Any) -> None:
        """An ``Evaluate`` or ``compile``: a workflow of its own, a node, or the attached one."""
        if not self.sink.enabled:
            return
        parent = self._parent()
        names = _sub_module_names(program) if program is not None else {}
        if parent is None:
            name = self.workflow_name or label
            workflow = self._new_workflow(_run_id(call_id), kind, name, None)
            self._calls[call_id] = _Scope(workflow, None, root=True, names=names)
            self.sink.workflow_started(workflow)
        elif parent.shared:  # the attached workflow (or a LangGraph node) is this operation
            self._calls[call_id] = _Scope(
                parent.workflow, parent.node, shared=parent.node is not None, names=names
            )
        else:
            node = self._start_node(parent, _run_id(call_id), label, None)
            self._calls[call_id] = _Scope(parent.workflow, node, owns_node=True, names=names)

    def _end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        scope = self._calls.pop(call_id, None)
        if scope is None:
            return
        if scope.owns_node and scope.node is not None:
            node = scope.node
            node.end_ns = now_ns()
            node.outputs = outputs
            node.status = "FAILED" if exception is not None else "FINISHED"
            node.error = exception
        if scope.root:
            workflow = scope.workflow
            workflow.outputs = outputs
            workflow.status = "FAILED" if exception is not None else "FINISHED"
            workflow.error = exception
            workflow.end_ns = now_ns()
            self.sink.workflow_finished(workflow)

    def _parent(self) -> _Scope | None:
        """The scope of the calling DSPy call, the attached workflow, or a LangGraph node."""
        parent_id = ACTIVE_CALL_ID.get()
        if parent_id is not None:
            scope = self._calls.get(parent_id)
            if scope is not None:
                return scope
        attached = self._attached.get()
        if attached is not None:
            return attached
        return _langchain_scope()


def _langchain_scope() -> _Scope | None:
    """The LangChain run our handler is recording in this context (a LangGraph node), if any."""
    from langchain_core.runnables.config import var_child_runnable_config

    config = var_child_runnable_config.get()
    if not config:
        return None
    manager = config.get("callbacks")
    parent_run_id = getattr(manager, "parent_run_id", None)
    if parent_run_id is None:
        return None
    for handler in getattr(manager, "handlers", None) or ():
        if isinstance(handler, RunTree):
            found = handler.recording(parent_run_id)
            if found is not None:
                workflow, node = found
                return _Scope(workflow, node if node is not None else _direct(workflow),
                              shared=True)
    return None
