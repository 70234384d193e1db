"""The MLflow run plan: one workflow's facts encoded as ADR-011 runs (params, metrics, tags,
artifacts), the parent with one nested plan per node.

Derived here, in the MLflow sink, from the sink-neutral :class:`WorkflowFacts`; nothing
else knows these key names. Caller metadata (``ca_params``, ``ca_metrics``, ``ca_tags``)
keeps its own names unless the handler computes that name (or it is in the reserved
``mlflow.`` / ``configurable_agents.`` space): then it is written as ``ca.<name>``, so a
caller can never replace a computed number, an identity param or an identifying tag.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from configurable_agents.names import (
    NODE_RUN_PREFIX,
    Artifact,
    Kind,
    Metric,
    Param,
    Status,
    Tag,
)
from configurable_agents.observability.facts.model import CallFacts, NodeFacts, WorkflowFacts
from configurable_agents.observability.facts.serialization import dump_json, truncate
from configurable_agents.observability.sinks.mlflow.keys import MAX_TAG_VALUE, mlflow_key
from configurable_agents.observability.sinks.run_plan import RunPlan

__all__ = ["PlanOptions", "RunPlan", "plan_for", "start_plan"]

#: Prefix of a caller-supplied key whose name the handler computes itself.
CALLER_PREFIX = "ca."


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """The MLflow block's settings the plan needs."""

    log_artifacts: bool = True
    max_param_chars: int = 6000
    max_artifact_chars: int = 5_000_000

    @classmethod
    def from_config(cls, config: Any) -> PlanOptions:
        return cls(config.log_artifacts, config.max_param_chars, config.max_artifact_bytes)


def run_status(status: str) -> str:
    """MLflow's run status for a facts status: INTERRUPTED is a FINISHED run with a tag."""
    return status if status in (Status.FAILED, Status.KILLED) else Status.FINISHED


def identity_tags(facts: WorkflowFacts) -> dict[str, str]:
    """Tags every run of the workflow carries: name, version, attribution, caller tags."""
    tags = {Tag.WORKFLOW_NAME: facts.name}
    if facts.version:
        tags[Tag.WORKFLOW_VERSION] = facts.version
    tags.update({mlflow_key(k): v for k, v in facts.attribution.items()})
    protected = set(tags) | _PROTECTED_TAGS
    for key, value in facts.caller.tags.items():
        name = mlflow_key(key)
        if name in protected or name.startswith(_RESERVED_TAG_PREFIXES):
            name = mlflow_key(CALLER_PREFIX + name)
        tags.setdefault(name, value)
    return tags


def start_plan(facts: WorkflowFacts) -> RunPlan:
    """The parent run as created at workflow start: name, start time, identifying tags."""
    start_ms = facts.start_ns // 1_000_000
    tags = {
        **identity_tags(facts),
        Tag.KIND: Kind.WORKFLOW,
        Tag.LANGCHAIN_RUN_ID: facts.langchain_run_id,
        Tag.STATUS: "RUNNING",
        # Lets `configurable-agents cleanup --stale` close runs of killed processes.
        Tag.HOST: socket.gethostname(),
        Tag.PID: str(os.getpid()),
        Tag.HEARTBEAT_MS: str(start_ms),
    }
    return RunPlan(facts.display_name, start_ms, start_ms, "RUNNING", tags=tags)


def plan_for(facts: WorkflowFacts, options: PlanOptions) -> RunPlan:
    """The parent run with one nested plan per node (subgraph nodes nested deeper)."""
    common = identity_tags(facts)
    parent = _parent(facts, options, common)
    parent.children = [_node(n, options, common) for n in facts.nodes]
    return parent


def _parent(facts: WorkflowFacts, options: PlanOptions, common: dict[str, str]) -> RunPlan:
    totals, usage = facts.totals, facts.totals.usage
    status = run_status(facts.status)
    all_calls = tuple(call for _, call in facts.model_calls())
    plan = RunPlan(facts.display_name, facts.start_ns // 1_000_000, facts.end_ns // 1_000_000,
                   status, calls=all_calls)
    params: dict[str, Any] = {
        Param.WORKFLOW_NAME: facts.name,
        Param.WORKFLOW_VERSION: facts.version or "",
    }
    if facts.global_model:
        params[Param.GLOBAL_MODEL] = facts.global_model
    if facts.global_temperature is not None:
        params[Param.GLOBAL_TEMPERATURE] = facts.global_temperature
    if facts.direct is not None:  # no node layer (a chain, a top-level DSPy agent): tools here
        tools = tool_names(facts.direct, facts.direct.calls)
        if tools:
            params[Param.TOOLS] = json.dumps(tools)
    params.update(facts.params)
    _set_params(plan, _merge_caller(params, facts.caller.params), options)
    plan.metrics.update({
        Metric.DURATION_SECONDS: totals.duration_s,
        Metric.TOTAL_INPUT_TOKENS: usage.input,
        Metric.TOTAL_OUTPUT_TOKENS: usage.output,
        Metric.TOTAL_COST_USD: totals.cost_usd,
        Metric.NODE_COUNT: totals.node_count,
        Metric.RETRY_COUNT: totals.retries,
        Metric.FALLBACK_COUNT: totals.fallbacks,
        Metric.STATUS: 1 if status == Status.FINISHED else 0,
        Metric.LLM_CALLS: totals.llm_calls,
        Metric.TOTAL_CACHED_INPUT_TOKENS: usage.cache_read,
        Metric.TOTAL_CACHE_WRITE_TOKENS: usage.cache_write,
        Metric.TOTAL_REASONING_TOKENS: usage.reasoning,
        Metric.TOTAL_TOKENS: usage.total or usage.input + usage.output,
    })
    plan.metrics.update(_merge_caller(plan.metrics, facts.caller.metrics, key=mlflow_key))
    plan.tags.update({
        **common,
        Tag.KIND: Kind.WORKFLOW,
        Tag.LANGCHAIN_RUN_ID: facts.langchain_run_id,
        Tag.STATUS: facts.status,
    })
    if facts.stop_reason:
        plan.tags[Tag.STOP_REASON] = facts.stop_reason
    if facts.interrupted:
        plan.tags[Tag.INTERRUPTED] = "true"
        if facts.interrupt_kind:
            plan.tags[Tag.INTERRUPT_KIND] = facts.interrupt_kind
        if facts.interrupted_at:
            plan.tags[Tag.INTERRUPTED_AT] = ",".join(facts.interrupted_at)[:MAX_TAG_VALUE]
    if facts.kind != "chain" or not facts.nodes:
        plan.tags[Tag.ROOT_KIND] = facts.kind
    plan.tags.update(usage_tags(all_calls))
    if facts.error is not None:
        plan.tags[Tag.ERROR_TYPE] = facts.error.type
        plan.tags[Tag.ERROR_MESSAGE] = facts.error.message[:MAX_TAG_VALUE]
    if options.log_artifacts:
        for name, text in facts.caller.artifacts.items():
            plan.artifacts[mlflow_key(name).replace("/", "_").lstrip(".") or "_"] = text
        plan.artifacts[Artifact.INPUTS] = dump_json(facts.inputs)
        plan.artifacts[Artifact.OUTPUTS] = dump_json(
            facts.outputs if status == Status.FINISHED else None
        )
        if facts.error is not None:
            plan.artifacts[Artifact.ERROR] = facts.error.traceback
        if facts.direct is not None:
            plan.artifacts.update(call_artifacts(facts.direct.calls))
    _cap_artifacts(plan, options.max_artifact_chars)
    return plan


def _node(node: NodeFacts, options: PlanOptions, common: dict[str, str]) -> RunPlan:
    calls = tuple(node.all_calls())
    usage = sum((c.usage for c in calls[1:]), calls[0].usage) if calls else None
    status = run_status(node.status)
    plan = RunPlan(f"{NODE_RUN_PREFIX}{node.node_id}", node.start_ns // 1_000_000,
                   (node.end_ns or node.start_ns) // 1_000_000, status, node=node,
                   calls=node.calls)
    params: dict[str, Any] = {Param.NODE_ID: node.node_id}
    models = list(dict.fromkeys(c.model for c in calls if c.model))
    if models:
        params[Param.NODE_MODEL] = ",".join(models)
    params[Param.TOOLS] = json.dumps(tool_names(node, calls))
    params.update(node.params)
    _set_params(plan, params, options)
    end_ns = node.end_ns or node.start_ns
    plan.metrics.update({
        Metric.NODE_DURATION_MS: round((end_ns - node.start_ns) / 1e6, 3),
        Metric.INPUT_TOKENS: usage.input if usage else 0,
        Metric.OUTPUT_TOKENS: usage.output if usage else 0,
        Metric.RETRIES: node.retries,
        Metric.COST_USD: round(sum(c.cost_usd for c in calls), 8),
        Metric.LLM_CALLS: len(calls),
        Metric.CACHED_INPUT_TOKENS: usage.cache_read if usage else 0,
        Metric.REASONING_TOKENS: usage.reasoning if usage else 0,
        Metric.STATUS: 1 if status == Status.FINISHED else 0,
    })
    ttft = [(c.first_token_ns - c.start_ns) / 1e6 for c in calls if c.first_token_ns is not None]
    if ttft:
        plan.metrics[Metric.TIME_TO_FIRST_TOKEN_MS] = round(ttft[0], 3)
    plan.metrics.update(node.custom_metrics)
    plan.tags.update({
        **common,
        Tag.KIND: Kind.NODE,
        Tag.NODE_ID: node.node_id or "",
        Tag.LANGCHAIN_RUN_ID: str(node.run_id),
        Tag.STATUS: Status.INTERRUPTED if node.status == Status.INTERRUPTED else status,
        **usage_tags(calls),
    })
    if node.handoff_to:
        plan.tags[Tag.HANDOFF_TO] = node.handoff_to[:MAX_TAG_VALUE]
    if node.error is not None:
        plan.tags[Tag.ERROR_TYPE] = node.error.type
        plan.tags[Tag.ERROR_MESSAGE] = node.error.message[:MAX_TAG_VALUE]
    if options.log_artifacts:
        plan.artifacts.update(call_artifacts(node.calls))
        plan.artifacts.update(node.artifacts)
        if node.error is not None:
            plan.artifacts[Artifact.ERROR] = node.error.traceback
    _cap_artifacts(plan, options.max_artifact_chars)
    plan.children = [_node(c, options, common) for c in node.children]
    return plan


# ---- helpers -----------------------------------------------------------------------------------


def _merge_caller(
    computed: Mapping[str, Any], caller: Mapping[str, Any], key: Any = mlflow_key
) -> dict[str, Any]:
    """``computed`` plus the caller's entries; a clashing caller key becomes ``ca.<key>``."""
    out = dict(computed)
    for raw, value in caller.items():
        name = key(raw)
        if name in computed:
            name = key(CALLER_PREFIX + name)
        out.setdefault(name, value)
    return out


def _set_params(plan: RunPlan, params: Mapping[str, Any], options: PlanOptions) -> None:
    for key, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        name = mlflow_key(key)
        if len(text) > options.max_param_chars:
            if options.log_artifacts:
                plan.artifacts[f"{Artifact.PARAMS_DIR}/{name}.txt"] = text
            marker = f"...[truncated; full value in {Artifact.PARAMS_DIR}/{name}.txt]"
            text = text[: options.max_param_chars - len(marker)] + marker
        plan.params[name] = text


def usage_tags(calls: Iterable[CallFacts]) -> dict[str, str]:
    calls = list(calls)
    tags: dict[str, str] = {}
    unpriced = sorted({c.model or "<unknown model>" for c in calls if not c.priced})
    if unpriced:
        tags[Tag.PRICING] = "unknown"
        tags[Tag.UNPRICED_MODELS] = ",".join(unpriced)[:MAX_TAG_VALUE]
    if any(c.usage.estimated for c in calls):
        tags[Tag.TOKENS_ESTIMATED] = "true"
        methods = sorted({c.usage.method for c in calls if c.usage.estimated and c.usage.method})
        if methods:
            tags[Tag.TOKENS_ESTIMATION_METHOD] = ",".join(methods)
    hints = [c.hint for c in calls if c.hint]
    if hints:
        tags[Tag.USAGE_HINT] = hints[0][:MAX_TAG_VALUE]
    if any(c.usage.llm_cache_hit for c in calls):
        tags[Tag.LLM_CACHE_HIT] = "true"
    answered = sorted({c.model or "<unknown model>" for c in calls if c.fallback_answer})
    if answered:
        tags[Tag.FALLBACK_MODEL] = ",".join(answered)[:MAX_TAG_VALUE]
    return tags


def call_artifacts(calls: tuple[CallFacts, ...]) -> dict[str, str]:
    if not calls:
        return {}
    if len(calls) == 1:
        return {Artifact.PROMPT: calls[0].prompt_text, Artifact.RESPONSE: calls[0].response_text}
    prompts, responses = [], []
    for i, c in enumerate(calls, 1):
        header = f"=== call {i} ({c.model or 'model'}) ==="
        prompts.append(f"{header}\n{c.prompt_text}")
        responses.append(f"{header}\n{c.response_text}")
    return {Artifact.PROMPT: "\n\n".join(prompts), Artifact.RESPONSE: "\n\n".join(responses)}


def tool_names(node: NodeFacts, calls: tuple[CallFacts, ...]) -> list[str]:
    names: set[str] = set()
    for call in calls:
        for tool in call.tool_definitions:
            if isinstance(tool, Mapping):
                function = tool.get("function")
                name = tool.get("name") or (function.get("name") if isinstance(function, Mapping)
                                            else None)
                if name:
                    names.add(str(name))
    for each in node.walk():
        names.update(t.name for t in each.tools if t.kind == "tool")
    return sorted(names)


def _cap_artifacts(plan: RunPlan, limit: int) -> None:
    for path, text in list(plan.artifacts.items()):
        capped, was_cut = truncate(text, limit)
        if was_cut:
            plan.artifacts[path] = capped
            plan.tags[f"{Tag.TRUNCATED_PREFIX}{mlflow_key(path)}"] = str(len(text))


# Tags the handler sets itself: caller tags are renamed rather than overwrite them.
_PROTECTED_TAGS = frozenset(
    {v for k, v in vars(Tag).items() if k.isupper() and isinstance(v, str)}
)
# ``mlflow.`` tags are MLflow's own controls; ``configurable_agents.`` ones are ours.
_RESERVED_TAG_PREFIXES = ("mlflow.", "configurable_agents.")
