"""Turn a finished WorkflowRecord into plain MLflow run plans (params, metrics, tags, artifacts).

Pure and exporter-side: usage extraction, pricing, serialization and redaction
all happen here, never on the caller thread. The plan is what the writer sends
to MLflow and what the trace builder mirrors, so both views show the same numbers.
"""

from __future__ import annotations

import json
import os
import socket
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from configurable_agents.names import (
    ATTRIBUTION_KEYS,
    NODE_RUN_PREFIX,
    Artifact,
    Kind,
    Metric,
    Param,
    Status,
    StopReason,
    Tag,
)
from configurable_agents.observability.capture.records import (
    LLMCallRecord,
    NodeRecord,
    WorkflowRecord,
)
from configurable_agents.observability.facts.calls import (
    call_artifacts,
    price_call,
    usage_tags,
)
from configurable_agents.observability.facts.plan import (
    MAX_TAG_VALUE,
    AssembleOptions,
    CallFacts,
    RunPlan,
    safe_str,
    sanitize_key,
)
from configurable_agents.observability.facts.serialization import (
    SECRET_MASK,
    is_secret_key,
    to_json_text,
    truncate,
)
from configurable_agents.observability.facts.usage import TokenUsage

__all__ = ["AssembleOptions", "Assembler", "CallFacts", "RunPlan", "sanitize_key"]


class Assembler:
    """Builds the RunPlan tree for a workflow; one per exporter (holds the price book)."""

    def __init__(self, price_book: Any) -> None:
        self.price_book = price_book
        self.warnings: list[str] = []

    # ---- per call ----------------------------------------------------------------------------

    def call_facts(self, call: LLMCallRecord, when: Any = None) -> CallFacts:
        """Usage, price and texts of one model call (see :func:`.calls.price_call`)."""
        return price_call(call, self.price_book, when)

    @staticmethod
    def start_plan(workflow: WorkflowRecord, options: AssembleOptions) -> RunPlan:
        """The parent run as created at workflow start: name, start time, identifying tags."""
        tags = {
            Tag.WORKFLOW_NAME: workflow.name,
            **({Tag.WORKFLOW_VERSION: workflow.version} if workflow.version else {}),
            **_attribution_tags(workflow, options),
            Tag.KIND: Kind.WORKFLOW,
            Tag.LANGCHAIN_RUN_ID: str(workflow.run_id),
            Tag.STATUS: "RUNNING",
            # Lets `configurable-agents cleanup --stale` close runs of killed processes.
            Tag.HOST: socket.gethostname(),
            Tag.PID: str(os.getpid()),
            Tag.HEARTBEAT_MS: str(workflow.start_ns // 1_000_000),
        }
        return RunPlan(
            run_name=_run_name(workflow, options.run_name_template, options.redact),
            start_ms=workflow.start_ns // 1_000_000,
            end_ms=workflow.start_ns // 1_000_000,
            status="RUNNING",
            tags=tags,
        )

    # ---- the tree ----------------------------------------------------------------------------

    def plan(self, workflow: WorkflowRecord, options: AssembleOptions) -> RunPlan:
        facts_by_node: dict[int, list[CallFacts]] = {}
        all_facts: list[CallFacts] = []
        for node in _nodes_with_direct(workflow):
            facts = [self.call_facts(c) for c in node.llm_calls]
            facts_by_node[id(node)] = facts
            all_facts.extend(facts)

        attribution = _attribution_tags(workflow, options)
        common_tags = {
            Tag.WORKFLOW_NAME: workflow.name,
            **({Tag.WORKFLOW_VERSION: workflow.version} if workflow.version else {}),
            **attribution,
        }

        parent = self._parent_plan(workflow, options, all_facts, common_tags)
        for node in workflow.nodes:
            parent.children.append(self._node_plan(node, options, facts_by_node, common_tags))
        if options.redact is not None:
            for plan in parent.walk():
                _redact_plan(plan, options.redact)
        return parent

    def _parent_plan(
        self,
        workflow: WorkflowRecord,
        options: AssembleOptions,
        all_facts: list[CallFacts],
        common_tags: dict[str, str],
    ) -> RunPlan:
        end_ns = workflow.end_ns or workflow.start_ns
        all_nodes = workflow.all_nodes()
        usage = sum((f.usage for f in all_facts), TokenUsage())
        run_status = _run_status(workflow.status)
        plan = RunPlan(
            run_name=_run_name(workflow, options.run_name_template, options.redact),
            start_ms=workflow.start_ns // 1_000_000,
            end_ms=end_ns // 1_000_000,
            status=run_status,
        )
        params: dict[str, Any] = {
            Param.WORKFLOW_NAME: workflow.name,
            Param.WORKFLOW_VERSION: workflow.version or "",
        }
        models = [f.model for f in all_facts if f.model]
        if models:
            params[Param.GLOBAL_MODEL] = max(set(models), key=models.count)
        temperature = next(
            (
                f.call.invocation_params.get("temperature")
                for f in all_facts
                if f.call.invocation_params
                and f.call.invocation_params.get("temperature") is not None
            ),
            None,
        )
        if temperature is not None:
            params[Param.GLOBAL_TEMPERATURE] = temperature
        direct = workflow.direct
        if direct is not None:  # no node layer (a chain, a top-level DSPy agent): tools here
            own = {id(c) for c in direct.llm_calls}
            tools = _tool_names([direct], [f for f in all_facts if id(f.call) in own])
            if tools:
                params[Param.TOOLS] = json.dumps(tools)
        params.update(options.workflow_params)
        ca_params = workflow.metadata.get("ca_params")
        if isinstance(ca_params, Mapping):
            params.update(ca_params)
        self._set_params(plan, params, options)

        retries = sum(n.retries for n in all_nodes) + workflow.retries_outside_nodes
        if workflow.direct is not None:
            retries += workflow.direct.retries
        plan.metrics.update(
            {
                Metric.DURATION_SECONDS: round((end_ns - workflow.start_ns) / 1e9, 6),
                Metric.TOTAL_INPUT_TOKENS: usage.input,
                Metric.TOTAL_OUTPUT_TOKENS: usage.output,
                Metric.TOTAL_COST_USD: round(sum(f.cost_usd for f in all_facts), 8),
                Metric.NODE_COUNT: len(all_nodes),
                Metric.RETRY_COUNT: retries,
                Metric.FALLBACK_COUNT: workflow.fallbacks,
                Metric.STATUS: 1 if run_status == Status.FINISHED else 0,
                Metric.LLM_CALLS: len(all_facts),
                Metric.TOTAL_CACHED_INPUT_TOKENS: usage.cache_read,
                Metric.TOTAL_CACHE_WRITE_TOKENS: usage.cache_write,
                Metric.TOTAL_REASONING_TOKENS: usage.reasoning,
                Metric.TOTAL_TOKENS: usage.total or usage.input + usage.output,
            }
        )
        tags = {
            **common_tags,
            Tag.KIND: Kind.WORKFLOW,
            Tag.LANGCHAIN_RUN_ID: str(workflow.run_id),
            Tag.STATUS: _status_tag(run_status, workflow.interrupted),
        }
        tags.update(_outcome_tags(workflow, run_status))
        if workflow.kind != "chain" or not workflow.nodes:
            tags[Tag.ROOT_KIND] = workflow.kind
        tags.update(usage_tags(all_facts))
        if workflow.error is not None:
            tags[Tag.ERROR_TYPE] = type(workflow.error).__name__
            tags[Tag.ERROR_MESSAGE] = safe_str(workflow.error)
        plan.tags.update(tags)
        plan.metrics.update(_extra_metrics(workflow.metadata.get("ca_metrics")))

        if options.log_artifacts:
            plan.artifacts.update(_extra_artifacts(workflow.metadata.get("ca_artifacts")))
            plan.artifacts[Artifact.INPUTS] = to_json_text(workflow.inputs)
            outputs = workflow.outputs if run_status == Status.FINISHED else None
            plan.artifacts[Artifact.OUTPUTS] = to_json_text(outputs)
            if workflow.error is not None:
                plan.artifacts[Artifact.ERROR] = _format_exception(workflow.error)
            if workflow.direct is not None:
                direct_facts = [
                    f for f in all_facts if any(f.call is c for c in workflow.direct.llm_calls)
                ]
                plan.artifacts.update(call_artifacts(direct_facts))
        _cap_artifacts(plan, options.max_artifact_chars)
        plan.calls = all_facts
        return plan

    def _node_plan(
        self,
        node: NodeRecord,
        options: AssembleOptions,
        facts_by_node: dict[int, list[CallFacts]],
        common_tags: dict[str, str],
    ) -> RunPlan:
        subtree = _subtree(node)
        own_facts = facts_by_node.get(id(node), [])
        facts = [f for n in subtree for f in facts_by_node.get(id(n), [])]
        usage = sum((f.usage for f in facts), TokenUsage())
        end_ns = node.end_ns or node.start_ns
        run_status = _run_status(node.status)
        plan = RunPlan(
            run_name=f"{NODE_RUN_PREFIX}{node.node_id}",
            start_ms=node.start_ns // 1_000_000,
            end_ms=end_ns // 1_000_000,
            status=run_status,
            node=node,
            calls=own_facts,
        )
        params: dict[str, Any] = {Param.NODE_ID: node.node_id}
        models = list(dict.fromkeys(f.model for f in facts if f.model))
        if models:
            params[Param.NODE_MODEL] = ",".join(models)
        params[Param.TOOLS] = json.dumps(_tool_names(subtree, facts))
        params.update(node.params)
        if isinstance(params.get(Param.TOOLS), list | tuple):
            params[Param.TOOLS] = json.dumps(list(params[Param.TOOLS]))
        self._set_params(plan, params, options)

        metrics: dict[str, float] = {
            Metric.NODE_DURATION_MS: round((end_ns - node.start_ns) / 1e6, 3),
            Metric.INPUT_TOKENS: usage.input,
            Metric.OUTPUT_TOKENS: usage.output,
            Metric.RETRIES: node.retries,
            Metric.COST_USD: round(sum(f.cost_usd for f in facts), 8),
            Metric.LLM_CALLS: len(facts),
            Metric.CACHED_INPUT_TOKENS: usage.cache_read,
            Metric.REASONING_TOKENS: usage.reasoning,
            Metric.STATUS: 1 if run_status == Status.FINISHED else 0,
        }
        ttft = [
            (f.call.first_token_ns - f.call.start_ns) / 1e6
            for f in facts
            if f.call.first_token_ns is not None
        ]
        if ttft:
            metrics[Metric.TIME_TO_FIRST_TOKEN_MS] = round(ttft[0], 3)
        metrics.update(node.custom_metrics)
        plan.metrics.update(metrics)

        plan.tags.update(
            {
                **common_tags,
                Tag.KIND: Kind.NODE,
                Tag.NODE_ID: node.node_id,
                Tag.LANGCHAIN_RUN_ID: str(node.run_id),
                Tag.STATUS: _status_tag(run_status, node.status == Status.INTERRUPTED),
                **usage_tags(facts),
            }
        )
        if node.handoff_to:
            plan.tags[Tag.HANDOFF_TO] = node.handoff_to[:MAX_TAG_VALUE]
        if node.error is not None:
            plan.tags[Tag.ERROR_TYPE] = type(node.error).__name__
            plan.tags[Tag.ERROR_MESSAGE] = safe_str(node.error)
        if options.log_artifacts:
            plan.artifacts.update(call_artifacts(own_facts))
            plan.artifacts.update(node.artifacts)
            if node.error is not None:
                plan.artifacts[Artifact.ERROR] = _format_exception(node.error)
        _cap_artifacts(plan, options.max_artifact_chars)
        for child in node.children:
            plan.children.append(self._node_plan(child, options, facts_by_node, common_tags))
        return plan

    @staticmethod
    def _set_params(plan: RunPlan, params: Mapping[str, Any], options: AssembleOptions) -> None:
        for key, value in params.items():
            text = value if isinstance(value, str) else _param_text(value)
            name = sanitize_key(safe_str(key))
            if is_secret_key(name) or type(value).__name__ == "SecretStr":
                text = SECRET_MASK
            if len(text) > options.max_param_chars:
                if options.log_artifacts:
                    plan.artifacts[f"{Artifact.PARAMS_DIR}/{name}.txt"] = text
                marker = f"...[truncated; full value in {Artifact.PARAMS_DIR}/{name}.txt]"
                text = text[: options.max_param_chars - len(marker)] + marker
            plan.params[name] = text


# ---- helpers -----------------------------------------------------------------------------------


def _param_text(value: Any) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return str(value)
    try:
        return json.dumps(value, default=safe_str, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        return safe_str(value) if not isinstance(value, Mapping | list | tuple) else (
            f"<{type(value).__name__} nested too deep to log>"
        )


def _extra_metrics(raw: Any) -> dict[str, float]:
    """``ca_metrics`` metadata (e.g. a DSPy evaluation's score): numbers only."""
    if not isinstance(raw, Mapping):
        return {}
    return {
        sanitize_key(str(k)): float(v)
        for k, v in raw.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _extra_artifacts(raw: Any) -> dict[str, str]:
    """``ca_artifacts`` metadata: file name -> text (or JSON-able value); names are data.

    A name is reduced to one safe file name (no directories), so metadata can never
    choose where an artifact lands.
    """
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, str] = {}
    for key, value in raw.items():
        name = sanitize_key(str(key)).replace("/", "_").lstrip(".") or "_"
        out[name] = value if isinstance(value, str) else to_json_text(value)
    return out


def _nodes_with_direct(workflow: WorkflowRecord) -> list[NodeRecord]:
    nodes = workflow.all_nodes()
    if workflow.direct is not None:
        nodes.append(workflow.direct)
    return nodes


def _subtree(node: NodeRecord) -> list[NodeRecord]:
    out = [node]
    for child in node.children:
        out.extend(_subtree(child))
    return out


def _tool_names(nodes: list[NodeRecord], facts: list[CallFacts]) -> list[str]:
    names: set[str] = set()
    for f in facts:
        for tool in (f.call.invocation_params or {}).get("tools") or ():
            if isinstance(tool, Mapping):
                name = tool.get("name") or (tool.get("function") or {}).get("name")
                if name:
                    names.add(str(name))
    for node in nodes:
        names.update(t.name for t in node.tool_calls if t.kind == "tool")
    return sorted(names)


def _attribution_tags(workflow: WorkflowRecord, options: AssembleOptions) -> dict[str, str]:
    metadata = workflow.metadata
    tags: dict[str, str] = {
        sanitize_key(k): safe_str(v, MAX_TAG_VALUE) for k, v in options.static_tags.items()
    }
    for key in (*ATTRIBUTION_KEYS, *options.tag_metadata_keys):
        value = metadata.get(key)
        if value is not None and value != "":
            tags[sanitize_key(key)] = safe_str(value, MAX_TAG_VALUE)
    ca_tags = metadata.get("ca_tags")
    if isinstance(ca_tags, Mapping):
        protected = set(tags) | _PROTECTED_TAGS
        for raw_key, value in ca_tags.items():
            key = sanitize_key(safe_str(raw_key))
            if key in protected or key.startswith(_RESERVED_TAG_PREFIXES):
                continue  # ca_tags never overwrite attribution or identifying tags
            tags[key] = safe_str(value, MAX_TAG_VALUE)
    return {k: (SECRET_MASK if is_secret_key(k) else v) for k, v in tags.items()}


# Tags the handler sets itself: ``ca_tags`` may not overwrite them (attribution, identity).
_PROTECTED_TAGS = frozenset(
    {*ATTRIBUTION_KEYS, *(v for k, v in vars(Tag).items() if k.isupper() and isinstance(v, str))}
)
# ``mlflow.`` tags are MLflow's own controls; ``configurable_agents.`` ones are ours.
_RESERVED_TAG_PREFIXES = ("mlflow.", "configurable_agents.")


def _cap_artifacts(plan: RunPlan, limit: int) -> None:
    for path, text in list(plan.artifacts.items()):
        capped, was_cut = truncate(text, limit)
        if was_cut:
            plan.artifacts[path] = capped
            plan.tags[f"{Tag.TRUNCATED_PREFIX}{sanitize_key(path)}"] = str(len(text))


def _format_exception(error: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(error))
    except Exception:
        return f"{type(error).__name__}: {safe_str(error)}"


def _run_name(
    workflow: WorkflowRecord, template: str | None, redact: Callable[[str], str] | None = None
) -> str:
    """The run's name: the template, or by default ``{workflow_name} v{version} {short_id}``.

    The short id (the last 8 hex digits of the LangChain run id; its first digits are a
    timestamp, shared by runs started together) tells apart runs of one workflow at a
    glance in MLflow's run list and compare view. With redaction each text value is
    redacted before it is placed, since a detector may not see an email once a template
    glues ``-20261130`` to it.
    """
    import datetime as dt

    short_id = workflow.run_id.hex[-8:]
    if not template:
        version = f" v{workflow.version}" if workflow.version else ""
        name = workflow.name if redact is None else redact(workflow.name)
        return f"{name}{version} {short_id}"
    started = dt.datetime.fromtimestamp(workflow.start_ns / 1e9, tz=dt.UTC)
    values: dict[str, Any] = {
        k: v for k, v in workflow.metadata.items() if isinstance(k, str) and k.isidentifier()
    }
    values.update(
        workflow_name=workflow.name,
        workflow_version=workflow.version or "",
        timestamp=started.strftime("%Y%m%d-%H%M%S"),
        date=started.strftime("%Y-%m-%d"),
        short_id=short_id,
        run_id=str(workflow.run_id),
    )
    if redact is not None:
        values = {k: redact(v) if isinstance(v, str) else v for k, v in values.items()}
    try:
        return template.format_map(_Missing(values))
    except Exception:  # a bad template or a metadata value whose __str__ raises
        return workflow.name


def _run_status(status: str) -> str:
    """MLflow's run status for a record status: INTERRUPTED is a FINISHED run with a tag."""
    if status in (Status.FAILED, Status.KILLED):
        return status
    return Status.FINISHED


def _status_tag(run_status: str, interrupted: bool) -> str:
    if run_status == Status.FINISHED and interrupted:
        return Status.INTERRUPTED
    return run_status


def _outcome_tags(workflow: WorkflowRecord, run_status: str) -> dict[str, str]:
    """Why a parent run is KILLED (stop_reason) or where an INTERRUPTED one paused."""
    tags: dict[str, str] = {}
    if run_status == Status.KILLED:
        tags[Tag.STOP_REASON] = workflow.stop_reason or StopReason.CLOSED_EARLY
    elif run_status == Status.FINISHED and workflow.interrupted:
        tags[Tag.INTERRUPTED] = "true"
        if workflow.interrupt_kind:
            tags[Tag.INTERRUPT_KIND] = workflow.interrupt_kind
        if workflow.interrupted_at:
            tags[Tag.INTERRUPTED_AT] = ",".join(workflow.interrupted_at)[:MAX_TAG_VALUE]
    return tags


class _Missing(dict):
    """Leaves unknown template fields visible rather than failing the run."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _redact_plan(plan: RunPlan, redact: Callable[[str], str]) -> None:
    plan.run_name = redact(plan.run_name)  # a workflow_name or run_name template may hold PII
    plan.params = {k: redact(v) for k, v in plan.params.items()}
    plan.tags = {k: (v if k in _UNREDACTED_TAGS else redact(v)) for k, v in plan.tags.items()}
    plan.artifacts = {k: redact(v) for k, v in plan.artifacts.items()}


# Identifiers we write ourselves: never PII, and redacting them would break lookups.
_UNREDACTED_TAGS = frozenset({Tag.LANGCHAIN_RUN_ID, Tag.KIND, Tag.STATUS})
