"""MLflowCallbackHandler: LangChain callback events -> in-memory run records.

The callbacks run on the caller's thread (or event loop: ``run_inline`` keeps
LangChain from hopping to a thread pool), so each one only does O(1) dict and
list updates keyed by ``run_id`` and captures references and timestamps. When
a root run ends, its finished :class:`WorkflowRecord` goes to the exporter,
which does all pricing, serialization, redaction and MLflow I/O elsewhere.
State is keyed by run id, never by context variables, so one handler can serve
many threads and many concurrent ``ainvoke`` calls.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from pydantic import ValidationError

from configurable_agents.config.loader import (
    ConfigError,
    format_validation_error,
    load_global_config,
)
from configurable_agents.config.schema import (
    GlobalConfig,
    MLFlowConfig,
    ObservabilityConfig,
    resolved_mlflow,
)
from configurable_agents.observability.capture.records import (
    LLMCallRecord,
    NodeRecord,
    ToolCallRecord,
    WorkflowRecord,
    now_ns,
)
from configurable_agents.observability.capture.snapshot import snapshot_result
from configurable_agents.observability.exporter import Exporter, ExporterStats

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

NODE_METRICS_EVENT = "ca_node_metrics"
_RETRY_TAG_PREFIX = "retry:attempt:"


def _never_raise(method: F) -> F:
    """Observability must never break the app: count and log-once internal errors."""

    @functools.wraps(method)
    def wrapper(self: MLflowCallbackHandler, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            self._exporter.record_internal_error(f"callback:{method.__name__}", exc)
            return None

    return wrapper  # type: ignore[return-value]


def _is_bubble_up(error: BaseException) -> bool:
    """LangGraph control flow (GraphInterrupt, ParentCommand) is not a failure."""
    try:
        from langgraph.errors import GraphBubbleUp
    except ImportError:  # pragma: no cover - langgraph is a dependency
        return False
    return isinstance(error, GraphBubbleUp)


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
    """Where a LangChain run belongs: its workflow, innermost node, and own record."""

    __slots__ = ("node", "record", "workflow")

    def __init__(
        self,
        workflow: WorkflowRecord,
        node: NodeRecord | None,
        record: LLMCallRecord | ToolCallRecord | None = None,
    ) -> None:
        self.workflow = workflow
        self.node = node
        self.record = record


class MLflowCallbackHandler(BaseCallbackHandler):
    """Log every LangGraph / LangChain invocation as an MLflow parent run with nested node runs.

    Attach it with ``config={"callbacks": [handler]}``. One instance is safe to share
    across threads and asyncio tasks; call :meth:`flush` before reading MLflow and
    :meth:`close` when done (an atexit hook also flushes with a bounded wait).
    """

    run_inline = True
    raise_error = False

    def __init__(
        self,
        config: MLFlowConfig | GlobalConfig | ObservabilityConfig | Mapping[str, Any] | None = None,
        *,
        workflow_name: str | None = None,
        workflow_version: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        pricing: Any = None,
        redactor: Any = None,
    ) -> None:
        if isinstance(config, Mapping):
            config = _config_from_mapping(config)
        self.config: MLFlowConfig = resolved_mlflow(config)
        self.workflow_name = workflow_name
        self.workflow_version = workflow_version
        self.params = dict(params or {})
        self.static_tags = {**self.config.tags, **(tags or {})}
        self._runs: dict[UUID, _Entry] = {}
        self._exporter = Exporter(
            self.config,
            pricing=pricing if pricing is not None else self.config.pricing,
            redactor=redactor,
        )

    # ---- construction helpers -------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        source: str | Path | GlobalConfig | ObservabilityConfig | MLFlowConfig | Mapping[str, Any],
        **kwargs: Any,
    ) -> MLflowCallbackHandler:
        """Build from a workflow YAML path, a config model, or a dict (env overrides applied)."""
        if isinstance(source, str | Path | Mapping):
            config: Any = load_global_config(source)
        else:
            config = source
        if isinstance(source, str | Path) and "workflow_name" not in kwargs:
            flow = _flow_block(source)
            kwargs.setdefault("workflow_name", flow.get("name"))
            if flow.get("version") is not None:
                kwargs.setdefault("workflow_version", str(flow["version"]))
        return cls(config, **kwargs)

    # ---- public API ---------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything queued so far is in MLflow; False on timeout."""
        return self._exporter.flush(self.config.flush_timeout_s if timeout is None else timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop the exporter thread. Idempotent."""
        return self._exporter.close(self.config.flush_timeout_s if timeout is None else timeout)

    def stats(self) -> ExporterStats:
        """Counters: queued, exported, failed, dropped, internal errors, in-flight state size."""
        return self._exporter.stats(active_runs=len(self._runs))

    @property
    def last_run_id(self) -> str | None:
        """MLflow run id of the most recently exported parent run."""
        return self._exporter.last_run_id

    def run_id_for(self, langchain_run_id: UUID | str) -> str | None:
        """MLflow parent run id for a LangChain root run id (after flush)."""
        return self._exporter.run_id_for(str(langchain_run_id))

    # ---- cheap skipping when disabled ---------------------------------------------------------

    def _skip_when_disabled(self) -> bool:
        return not self.config.enabled

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
            name=str(metadata.get("workflow_name") or self.workflow_name or name or kind),
            version=_opt_str(metadata.get("workflow_version") or self.workflow_version),
            kind=kind,
            metadata=dict(metadata),
            tags=list(tags or ()),
            inputs=_shallow_copy(inputs),
        )
        workflow.run_ids.append(run_id)
        self._runs[run_id] = _Entry(workflow, None)
        self._exporter.workflow_started(workflow, self)
        return workflow

    def _finish_workflow(self, workflow: WorkflowRecord) -> None:
        workflow.end_ns = now_ns()
        runs = self._runs
        for rid in workflow.run_ids:
            runs.pop(rid, None)
        workflow.run_ids.clear()
        workflow.node_index.clear()
        self._exporter.workflow_finished(workflow, self)

    def _direct(self, workflow: WorkflowRecord) -> NodeRecord:
        """The pseudo-node collecting calls made outside any graph node."""
        if workflow.direct is None:
            workflow.direct = NodeRecord(
                node_id=workflow.name, run_id=workflow.run_id, start_ns=workflow.start_ns
            )
        return workflow.direct

    def _parent(self, parent_run_id: UUID | None) -> _Entry | None:
        return self._runs.get(parent_run_id) if parent_run_id is not None else None

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
        parent = self._parent(parent_run_id)
        if parent is None:
            self._start_workflow(run_id, "chain", name, metadata, tags, inputs)
            return
        workflow, node = parent.workflow, parent.node
        md = metadata or {}
        graph_node = md.get("langgraph_node")
        checkpoint_ns = md.get("langgraph_checkpoint_ns")
        if (
            graph_node is not None
            and name == graph_node
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
        self._runs[run_id] = _Entry(workflow, node)

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
            node.artifacts.update({str(k): str(v) for k, v in node_artifacts.items()})
        (enclosing.children if enclosing else workflow.nodes).append(node)
        workflow.node_index[key] = node
        return node

    def _count_retry(self, workflow: WorkflowRecord, node: NodeRecord | None) -> None:
        if node is not None:
            node.retries += 1
        else:
            workflow.retries_outside_nodes += 1

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
            return
        workflow, node = entry.workflow, entry.node
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
            return
        workflow, node = entry.workflow, entry.node
        bubble_up = _is_bubble_up(error)
        if workflow.run_id == run_id:
            if bubble_up:
                workflow.interrupted = True
                workflow.status = "FINISHED"
            else:
                workflow.status = "FAILED"
                workflow.error = error
            self._finish_workflow(workflow)
        elif node is not None and node.run_id == run_id:
            node.end_ns = now_ns()
            if bubble_up:
                node.status = "INTERRUPTED"
                workflow.interrupted = True
            else:
                node.status = "FAILED"
                node.error = error

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
        self._runs[run_id] = _Entry(workflow, node, call)

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
            return
        entry.record.error = error
        entry.record.end_ns = now_ns()
        if entry.workflow.run_id == run_id:
            entry.workflow.status = "FAILED"
            entry.workflow.error = error
            self._finish_workflow(entry.workflow)

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
        self._runs[run_id] = _Entry(workflow, node, call)

    def _end_tool(self, run_id: UUID, output: Any, error: BaseException | None) -> None:
        entry = self._runs.get(run_id)
        if entry is None or not isinstance(entry.record, ToolCallRecord):
            return
        entry.record.output = output
        entry.record.error = error
        entry.record.end_ns = now_ns()
        if entry.workflow.run_id == run_id:
            entry.workflow.outputs = output
            entry.workflow.status = "FAILED" if error is not None else "FINISHED"
            entry.workflow.error = error
            self._finish_workflow(entry.workflow)

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

    def __repr__(self) -> str:
        return (
            f"MLflowCallbackHandler(enabled={self.config.enabled}, "
            f"tracking_uri={self.config.display_tracking_uri!r}, "
            f"experiment_name={self.config.experiment_name!r})"
        )


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


def _config_from_mapping(data: Mapping[str, Any]) -> MLFlowConfig | GlobalConfig:
    """A dict is either the MLflow block itself or a workflow / ``config:`` block."""
    if data and set(data) <= set(MLFlowConfig.model_fields):
        try:
            return MLFlowConfig.model_validate(dict(data))
        except ValidationError as exc:
            raise ConfigError(
                format_validation_error(exc, source="<dict>", prefix=("mlflow",))
            ) from None
    return load_global_config(data, env=False)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _flow_block(path: str | Path) -> dict[str, Any]:
    from configurable_agents.config.loader import read_yaml

    flow = read_yaml(path).get("flow")
    return flow if isinstance(flow, dict) else {}
