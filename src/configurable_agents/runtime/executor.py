"""Run a workflow file: validated config -> LangGraph ``StateGraph`` -> invoke.

Observability is not a branch of the executor: when ``observability.mlflow`` is
enabled the MLflow handler is simply put in the invocation's ``callbacks``, and
everything it needs to know (workflow name/version, params, prompt template
hashes, the demo tag) travels as LangChain metadata. The same graph runs the
same way with observability off.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict
from uuid import UUID, uuid4

from langchain_core.callbacks import BaseCallbackHandler, dispatch_custom_event
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from configurable_agents.config.schema import ObservabilityConfig
from configurable_agents.config.workflow import (
    NodeConfig,
    WorkflowConfig,
    load_workflow,
    parse_type,
)
from configurable_agents.names import Param
from configurable_agents.runtime.demo_model import JSON_SCHEMA_MARKER
from configurable_agents.runtime.providers import ChatModelFactory, default_factory, demo_requested
from configurable_agents.runtime.summary import RunSummary, SummarySink
from configurable_agents.tools import get_tools

NODE_METRICS_EVENT = "ca_node_metrics"
MAX_TOOL_ROUNDS = 5
_DEADLINE_KEY = "ca_deadline"
# How long the runner waits for MLflow before reading the summary back. The first
# write to a fresh store (imports, schema migrations) can take many seconds.
RESULT_FLUSH_TIMEOUT_S = 120.0
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class WorkflowInputError(ValueError):
    """The inputs do not fit the workflow's state (missing required, unknown or mistyped)."""


class NodeOutputError(ValueError):
    """A node's reply still failed output validation after ``max_retries`` corrections."""


class WorkflowTimeoutError(TimeoutError):
    """The workflow ran past ``config.execution.timeout`` seconds."""


@dataclass(frozen=True)
class WorkflowResult:
    outputs: dict[str, Any]  # the final state
    workflow_name: str
    workflow_version: str
    duration_s: float  # wall time measured here, also when observability is off
    demo: bool
    run_id: str | None = None  # MLflow parent run id (None when observability is off)
    summary: RunSummary | None = None
    output_fields: list[str] = field(default_factory=list)

    @property
    def node_outputs(self) -> dict[str, Any]:
        """Only the state fields some node writes."""
        return {k: self.outputs.get(k) for k in self.output_fields}


# ---------------------------------------------------------------- inputs


def state_model(workflow: WorkflowConfig) -> type[BaseModel]:
    """A pydantic model of the state: checks inputs and fills defaults."""
    fields: dict[str, Any] = {}
    for name, spec in workflow.state.fields.items():
        typ = parse_type(spec.type)
        if spec.required:
            fields[name] = (typ, Field(description=spec.description))
        else:
            fields[name] = (typ | None, Field(default=spec.default, description=spec.description))
    return create_model(
        f"{workflow.flow.name}_state", __config__=ConfigDict(extra="forbid"), **fields
    )


def prepare_inputs(workflow: WorkflowConfig, inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The initial state, or a WorkflowInputError that says which inputs to pass."""
    inputs = dict(inputs or {})
    missing = [n for n in workflow.required_inputs if inputs.get(n) is None]
    if missing:
        described = ", ".join(
            f"'{n}'" + (f" ({d})" if (d := workflow.state.fields[n].description) else "")
            for n in missing
        )
        example = " ".join(f"--input {n}=..." for n in missing)
        raise WorkflowInputError(f"missing required input {described}; pass e.g. {example}")
    try:
        return state_model(workflow).model_validate(inputs).model_dump()
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            name = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                known = ", ".join(workflow.state.fields)
                problems.append(f"unknown input '{name}'; state fields are: {known}")
            else:
                problems.append(f"input '{name}': {err['msg']}")
        raise WorkflowInputError("; ".join(problems)) from None


# ---------------------------------------------------------------- node logic


def render_prompt(template: str, state: Mapping[str, Any]) -> str:
    """Replace ``{state.x}`` with the state value; every other brace stays as written."""

    def value(match: re.Match[str]) -> str:
        v = state.get(match.group(1))
        if v is None:
            return ""
        return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)

    return re.sub(r"\{state\.([A-Za-z_][A-Za-z0-9_]*)\}", value, template)


def output_model(workflow: WorkflowConfig, node: NodeConfig) -> type[BaseModel] | None:
    """The model a reply must validate against; None for one plain-text ``str`` output."""
    if node.output_schema is not None:
        specs = [(f.name, f.type, f.description) for f in node.output_schema.fields]
    else:
        specs = [
            (n, workflow.state.fields[n].type, workflow.state.fields[n].description)
            for n in node.outputs
        ]
        if len(specs) == 1 and specs[0][1] == "str":
            return None
    fields: dict[str, Any] = {
        name: (parse_type(typ), Field(description=desc)) for name, typ, desc in specs
    }
    return create_model(f"{node.id}_output", __config__=ConfigDict(extra="ignore"), **fields)


def schema_instruction(model: type[BaseModel]) -> str:
    schema = json.dumps(model.model_json_schema(), ensure_ascii=False)
    return (
        "\n\nRespond with only a JSON object (no prose, no code fences) that validates "
        f"against this {JSON_SCHEMA_MARKER}\n{schema}"
    )


def parse_reply(text: str, node: NodeConfig, model: type[BaseModel] | None) -> dict[str, Any]:
    """The state update a reply makes; ValueError says what is wrong with it."""
    if model is None:
        if not text.strip():
            raise ValueError("the reply is empty")
        return {node.outputs[0]: text.strip()}
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    start = body.find("{")
    if start < 0:
        raise ValueError("the reply contains no JSON object")
    try:
        data, _ = json.JSONDecoder().raw_decode(body[start:])
    except json.JSONDecodeError as exc:
        raise ValueError(f"the reply is not valid JSON: {exc.msg} at position {exc.pos}") from None
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise ValueError(
            "; ".join(
                f"field '{'.'.join(str(p) for p in e['loc']) or '<root>'}': {e['msg']}"
                for e in exc.errors(include_url=False)
            )
        ) from None
    return {name: getattr(parsed, name) for name in node.outputs}


def _text(message: BaseMessage) -> str:
    text = message.text
    return text if isinstance(text, str) else str(message.content)


def _check_deadline(config: RunnableConfig, node_id: str) -> None:
    deadline = (config.get("configurable") or {}).get(_DEADLINE_KEY)
    if deadline is not None and time.monotonic() > deadline:
        raise WorkflowTimeoutError(
            f"node '{node_id}': the workflow ran past config.execution.timeout"
        )


def _run_tools(
    calls: list[dict[str, Any]], tools: Mapping[str, Any], config: RunnableConfig
) -> list[ToolMessage]:
    results = []
    for call in calls:
        tool = tools.get(call["name"])
        if tool is None:
            results.append(
                ToolMessage(
                    content=f"error: unknown tool '{call['name']}'; use one of {sorted(tools)}",
                    tool_call_id=call["id"],
                    name=call["name"],
                    status="error",
                )
            )
        else:
            results.append(tool.invoke({**call, "type": "tool_call"}, config))
    return results


def make_node(workflow: WorkflowConfig, node: NodeConfig, chat_model: BaseChatModel) -> Any:
    """The LangGraph node function for one workflow node."""
    max_retries = workflow.config.execution.max_retries if workflow.config.execution else 3
    out_model = output_model(workflow, node)
    tools = {t.name: t for t in get_tools(node.tools)}
    model: Runnable[Any, BaseMessage] = (
        chat_model.bind_tools(list(tools.values())) if tools else chat_model
    )
    suffix = schema_instruction(out_model) if out_model is not None else ""

    def run_node(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        messages: list[BaseMessage] = [HumanMessage(render_prompt(node.prompt, state) + suffix)]
        failures = 0
        tool_rounds = 0
        try:
            while True:
                _check_deadline(config, node.id)
                reply = model.invoke(messages, config)
                messages.append(reply)
                if isinstance(reply, AIMessage) and reply.tool_calls and tools:
                    tool_rounds += 1
                    if tool_rounds > MAX_TOOL_ROUNDS:
                        raise NodeOutputError(
                            f"node '{node.id}': still calling tools after {MAX_TOOL_ROUNDS} rounds"
                        )
                    messages.extend(_run_tools(reply.tool_calls, tools, config))
                    continue
                try:
                    return parse_reply(_text(reply), node, out_model)
                except ValueError as exc:
                    failures += 1
                    if failures > max_retries:
                        raise NodeOutputError(
                            f"node '{node.id}': output failed validation {failures} times "
                            f"(max_retries={max_retries}); last error: {exc}"
                        ) from None
                    messages.append(
                        HumanMessage(
                            f"Your reply was invalid: {exc}. Reply again, fixing this."
                            + (" Respond with only the JSON object." if out_model else "")
                        )
                    )
        finally:
            dispatch_custom_event(
                NODE_METRICS_EVENT, {"validation_failures": failures}, config=config
            )

    run_node.__name__ = node.id
    return run_node


def node_metadata(workflow: WorkflowConfig, node: NodeConfig) -> dict[str, Any]:
    """What the MLflow handler records on this node's nested run."""
    llm = workflow.node_llm(node)
    return {
        "ca_node_params": {
            Param.NODE_MODEL: llm.model,
            "node_temperature": llm.temperature,
            "tools": list(node.tools),
            "prompt_template_sha": node.prompt_template_sha,
        },
        "ca_node_artifacts": {"prompt_template.txt": node.prompt},
    }


def build_graph(
    workflow: WorkflowConfig, factory: ChatModelFactory
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the workflow into a LangGraph app (chat models are created here, up front)."""
    state_type = TypedDict(  # type: ignore[misc]
        f"{workflow.flow.name}_State",
        {n: parse_type(f.type) for n, f in workflow.state.fields.items()},
        total=False,
    )
    execution = workflow.config.execution
    retry = RetryPolicy(max_attempts=(execution.max_retries if execution else 3) + 1)
    graph = StateGraph(state_type)
    for node in workflow.nodes:
        graph.add_node(
            node.id,
            make_node(workflow, node, factory(workflow.node_llm(node))),
            metadata=node_metadata(workflow, node),
            retry_policy=retry,
        )
    ends = {"START": START, "END": END}
    for edge in workflow.edges:
        sources = [ends.get(s, s) for s in edge.sources]
        for target in edge.targets:
            graph.add_edge(sources[0] if len(sources) == 1 else sources, ends.get(target, target))
    return graph.compile(name=workflow.flow.name)


# ---------------------------------------------------------------- running


def invocation_metadata(workflow: WorkflowConfig, *, demo: bool) -> dict[str, Any]:
    """Root metadata the handler turns into the parent run's params and tags."""
    llm = workflow.llm
    params: dict[str, Any] = {
        Param.GLOBAL_MODEL: llm.model,
        Param.GLOBAL_TEMPERATURE: llm.temperature,
        "global_provider": "demo" if demo else llm.provider,
        "prompts_sha": workflow.prompts_sha,
    }
    return {
        "workflow_name": workflow.flow.name,
        "workflow_version": workflow.flow.version,
        "ca_params": params,
        "ca_tags": {"demo_model": "true"} if demo else {},
    }


def _create_handler(
    workflow: WorkflowConfig, observability: ObservabilityConfig, summary: SummarySink
) -> BaseCallbackHandler:
    """One handler from the whole observability config: every enabled sink, MLflow or not."""
    from configurable_agents.observability import MLflowCallbackHandler

    return MLflowCallbackHandler(
        observability,
        sinks=[summary],
        workflow_name=workflow.flow.name,
        workflow_version=workflow.flow.version,
        params={
            Param.GLOBAL_MODEL: workflow.llm.model,
            Param.GLOBAL_TEMPERATURE: workflow.llm.temperature,
        },
    )


def _parent_run_id(handler: Any, root_id: UUID, owned: bool) -> str | None:
    run_id = handler.run_id_for(root_id) or handler.run_id_for(str(root_id))
    if run_id is None and owned:
        run_id = handler.last_run_id
    return run_id


def _flush_timeout(observability: ObservabilityConfig | None) -> float:
    configured = observability.settings.flush_timeout_s if observability else 0.0
    return max(configured, RESULT_FLUSH_TIMEOUT_S)


def _any_sink(observability: ObservabilityConfig | None) -> bool:
    if observability is None:
        return False
    blocks = (observability.mlflow, observability.jsonl, observability.otel,
              observability.prometheus)
    return any(block is not None and block.enabled for block in blocks)


def _summary_sink_of(handler: BaseCallbackHandler | None) -> SummarySink | None:
    """The :class:`SummarySink` a shared handler was built with, if any (the demo adds one)."""
    for sink in getattr(handler, "sinks", ()) or ():
        if isinstance(sink, SummarySink):
            return sink
    return None


def run_workflow_from_config(
    config: WorkflowConfig | str | Path,
    inputs: Mapping[str, Any] | None = None,
    *,
    handler: BaseCallbackHandler | None = None,
    callbacks: Sequence[BaseCallbackHandler] = (),
    chat_model_factory: ChatModelFactory | None = None,
    demo: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
    env: bool = True,
) -> WorkflowResult:
    """Run a workflow once and return its final state (+ MLflow run and summary when on).

    ``handler``: an existing MLflow handler to share across many runs (flushed, not
    closed; the result's ``summary`` is filled when it was built with
    ``sinks=[SummarySink()]``, since summaries come from the facts); otherwise one is
    created from ``observability.mlflow`` when enabled and
    closed afterwards. ``callbacks``: any other LangChain callbacks to attach.
    ``chat_model_factory``: replaces provider lookup (tests, custom clients).
    ``demo``: use the offline demo model (default: ``CONFIGURABLE_AGENTS_DEMO``).
    ``metadata``: extra invocation metadata, e.g. ``{"user_id": "alice"}``.
    """
    workflow = config if isinstance(config, WorkflowConfig) else load_workflow(config, env=env)
    use_demo = demo_requested(demo)
    execution = workflow.config.execution
    timeout = execution.timeout if execution else None
    factory = chat_model_factory or default_factory(demo=use_demo, timeout=timeout)
    demo_tag = use_demo or any(workflow.node_llm(n).provider == "demo" for n in workflow.nodes)
    state = prepare_inputs(workflow, inputs)
    app = build_graph(workflow, factory)

    observability = workflow.config.observability
    owned = handler is None and _any_sink(observability)
    summary_sink = _summary_sink_of(handler) or SummarySink()
    if owned:
        assert observability is not None
        handler = _create_handler(workflow, observability, summary_sink)
    root_id = uuid4()
    started = time.monotonic()
    invoke_config: RunnableConfig = {
        "callbacks": [*callbacks, *([handler] if handler is not None else [])],
        "run_id": root_id,
        "run_name": workflow.flow.name,
        "metadata": {**invocation_metadata(workflow, demo=demo_tag), **(metadata or {})},
        "configurable": {_DEADLINE_KEY: started + timeout if timeout else None},
    }
    try:
        try:
            final = app.invoke(state, invoke_config)
        except BaseException as exc:
            if handler is not None:
                handler.flush(timeout=_flush_timeout(observability))  # type: ignore[attr-defined]
                failed_run = _parent_run_id(handler, root_id, owned)
                if failed_run:
                    exc.add_note(f"MLflow run: {failed_run}")
            raise
        duration = time.monotonic() - started
        run_id = summary = None
        if handler is not None:
            handler.flush(timeout=_flush_timeout(observability))  # type: ignore[attr-defined]
            run_id = _parent_run_id(handler, root_id, owned)
            summary = summary_sink.summary(root_id, run_id)
    finally:
        if owned and handler is not None:
            handler.close()  # type: ignore[attr-defined]
    return WorkflowResult(
        outputs=dict(final),
        workflow_name=workflow.flow.name,
        workflow_version=workflow.flow.version,
        duration_s=duration,
        demo=demo_tag,
        run_id=run_id,
        summary=summary,
        output_fields=workflow.output_fields,
    )
