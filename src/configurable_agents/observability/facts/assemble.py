"""Turn a finished WorkflowRecord into plain MLflow run plans (params, metrics, tags, artifacts).

Pure and exporter-side: usage extraction, pricing, serialization and redaction
all happen here, never on the caller thread. The plan is what the writer sends
to MLflow and what the trace builder mirrors, so both views show the same numbers.
"""

from __future__ import annotations

import json
import os
import re
import socket
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from configurable_agents.observability.capture.records import (
    LLMCallRecord,
    NodeRecord,
    WorkflowRecord,
)
from configurable_agents.observability.capture.snapshot import restore_result
from configurable_agents.observability.facts.serialization import (
    SECRET_MASK,
    content_text,
    is_secret_key,
    render_messages,
    to_json_text,
    truncate,
)
from configurable_agents.observability.facts.usage import (
    TokenUsage,
    estimate_usage,
    extract_usage,
    missing_stream_usage_hint,
    model_name_from_response,
)

# Invocation metadata keys that become attribution tags on the parent and every node.
ATTRIBUTION_KEYS = ("user_id", "team", "cost_center", "tenant_id", "session_id", "thread_id")
MAX_TAG_VALUE = 5000
_INVALID_NAME_CHARS = re.compile(r"[^\w\-. /:]")

KIND_TAG = "configurable_agents.kind"


@dataclass(slots=True)
class CallFacts:
    """What one LLM call cost and consumed, computed once and shared by runs and traces."""

    call: LLMCallRecord
    model: str | None
    provider: str | None
    usage: TokenUsage
    cost_usd: float
    priced: bool
    cost_source: str
    prompt_text: str
    response_text: str
    hint: str | None = None
    breakdown: Any = None  # CostBreakdown: input / cache / output / reasoning USD


@dataclass(slots=True)
class RunPlan:
    """One MLflow run to write: the parent (workflow) or a nested node run."""

    run_name: str
    start_ms: int
    end_ms: int
    status: str  # FINISHED | FAILED
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    children: list[RunPlan] = field(default_factory=list)
    node: NodeRecord | None = None
    calls: list[CallFacts] = field(default_factory=list)

    def walk(self) -> Iterable[RunPlan]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(slots=True)
class AssembleOptions:
    """Per-handler settings the assembler needs."""

    workflow_params: Mapping[str, Any] = field(default_factory=dict)
    static_tags: Mapping[str, str] = field(default_factory=dict)
    tag_metadata_keys: tuple[str, ...] = ()
    log_artifacts: bool = True
    max_param_chars: int = 6000
    max_artifact_chars: int = 5_000_000
    run_name_template: str | None = None
    redact: Callable[[str], str] | None = None


class Assembler:
    """Builds the RunPlan tree for a workflow; one per exporter (holds the price book)."""

    def __init__(self, price_book: Any) -> None:
        self.price_book = price_book
        self.warnings: list[str] = []

    # ---- per call ----------------------------------------------------------------------------

    def call_facts(self, call: LLMCallRecord, when: Any = None) -> CallFacts:
        call.response = restore_result(call.response)  # exporter thread: the caller is done
        metadata = call.metadata or {}
        params = call.invocation_params or {}
        model = (
            metadata.get("ls_model_name")
            or params.get("model")
            or params.get("model_name")
            or model_name_from_response(call.response)
        )
        provider = metadata.get("ls_provider") or params.get("_type")
        prompt_text = _prompt_text(call)
        response_text = _response_text(call)
        usage = extract_usage(call.response) if call.response is not None else None
        hint = None
        if usage is None and call.response is not None:
            hint = missing_stream_usage_hint(call.response, provider=provider)
            usage = estimate_usage([prompt_text], [response_text], model)
        usage = usage or TokenUsage()
        breakdown = None
        if usage.llm_cache_hit:
            cost, priced, source = 0.0, True, "cache-hit"
        elif model and not usage.is_empty:
            estimate = self.price_book.estimate_cost(usage, model, provider=provider, when=when)
            cost, priced, source = estimate.amount, estimate.priced, estimate.source
            breakdown = estimate.breakdown if estimate.priced else None
        else:
            cost, priced, source = 0.0, usage.is_empty, "none" if usage.is_empty else "unpriced"
        return CallFacts(
            call, model, provider, usage, cost, priced, source, prompt_text, response_text, hint,
            breakdown,
        )

    @staticmethod
    def start_plan(workflow: WorkflowRecord, options: AssembleOptions) -> RunPlan:
        """The parent run as created at workflow start: name, start time, identifying tags."""
        tags = {
            "workflow_name": workflow.name,
            **({"workflow_version": workflow.version} if workflow.version else {}),
            **_attribution_tags(workflow, options),
            KIND_TAG: "workflow",
            "langchain_run_id": str(workflow.run_id),
            "status": "RUNNING",
            # Lets `configurable-agents cleanup --stale` close runs of killed processes.
            "configurable_agents.host": socket.gethostname(),
            "configurable_agents.pid": str(os.getpid()),
            "configurable_agents.heartbeat_ms": str(workflow.start_ns // 1_000_000),
        }
        return RunPlan(
            run_name=_run_name(workflow, options.run_name_template),
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
            "workflow_name": workflow.name,
            **({"workflow_version": workflow.version} if workflow.version else {}),
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
        failed = workflow.status == "FAILED"
        plan = RunPlan(
            run_name=_run_name(workflow, options.run_name_template),
            start_ms=workflow.start_ns // 1_000_000,
            end_ms=end_ns // 1_000_000,
            status="FAILED" if failed else "FINISHED",
        )
        params: dict[str, Any] = {
            "workflow_name": workflow.name,
            "workflow_version": workflow.version or "",
        }
        models = [f.model for f in all_facts if f.model]
        if models:
            params["global_model"] = max(set(models), key=models.count)
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
            params["global_temperature"] = temperature
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
                "duration_seconds": round((end_ns - workflow.start_ns) / 1e9, 6),
                "total_input_tokens": usage.input,
                "total_output_tokens": usage.output,
                "total_cost_usd": round(sum(f.cost_usd for f in all_facts), 8),
                "node_count": len(all_nodes),
                "retry_count": retries,
                "status": 0 if failed else 1,
                "llm_calls": len(all_facts),
                "total_cached_input_tokens": usage.cache_read,
                "total_cache_write_tokens": usage.cache_write,
                "total_reasoning_tokens": usage.reasoning,
                "total_tokens": usage.total or usage.input + usage.output,
            }
        )
        tags = {
            **common_tags,
            KIND_TAG: "workflow",
            "langchain_run_id": str(workflow.run_id),
            "status": "FAILED"
            if failed
            else ("INTERRUPTED" if workflow.interrupted else "FINISHED"),
        }
        if workflow.interrupted:
            tags["interrupted"] = "true"
        if workflow.kind != "chain" or not workflow.nodes:
            tags["configurable_agents.root_kind"] = workflow.kind
        tags.update(_usage_tags(all_facts))
        if workflow.error is not None:
            tags["error_type"] = type(workflow.error).__name__
            tags["error_message"] = str(workflow.error)
        plan.tags.update(tags)

        if options.log_artifacts:
            plan.artifacts["inputs.json"] = to_json_text(workflow.inputs)
            plan.artifacts["outputs.json"] = to_json_text(workflow.outputs if not failed else None)
            if workflow.error is not None:
                plan.artifacts["error.txt"] = _format_exception(workflow.error)
            if workflow.direct is not None:
                direct_facts = [
                    f for f in all_facts if any(f.call is c for c in workflow.direct.llm_calls)
                ]
                plan.artifacts.update(_call_artifacts(direct_facts))
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
        failed = node.status == "FAILED"
        plan = RunPlan(
            run_name=f"node_{node.node_id}",
            start_ms=node.start_ns // 1_000_000,
            end_ms=end_ns // 1_000_000,
            status="FAILED" if failed else "FINISHED",
            node=node,
            calls=own_facts,
        )
        params: dict[str, Any] = {"node_id": node.node_id}
        models = list(dict.fromkeys(f.model for f in facts if f.model))
        if models:
            params["node_model"] = ",".join(models)
        params["tools"] = json.dumps(_tool_names(subtree, facts))
        params.update(node.params)
        if isinstance(params.get("tools"), list | tuple):
            params["tools"] = json.dumps(list(params["tools"]))
        self._set_params(plan, params, options)

        metrics: dict[str, float] = {
            "node_duration_ms": round((end_ns - node.start_ns) / 1e6, 3),
            "input_tokens": usage.input,
            "output_tokens": usage.output,
            "retries": node.retries,
            "cost_usd": round(sum(f.cost_usd for f in facts), 8),
            "llm_calls": len(facts),
            "cached_input_tokens": usage.cache_read,
            "reasoning_tokens": usage.reasoning,
            "status": 0 if failed else 1,
        }
        ttft = [
            (f.call.first_token_ns - f.call.start_ns) / 1e6
            for f in facts
            if f.call.first_token_ns is not None
        ]
        if ttft:
            metrics["time_to_first_token_ms"] = round(ttft[0], 3)
        metrics.update(node.custom_metrics)
        plan.metrics.update(metrics)

        plan.tags.update(
            {
                **common_tags,
                KIND_TAG: "node",
                "node_id": node.node_id,
                "langchain_run_id": str(node.run_id),
                "status": "FAILED" if failed else node.status,
                **_usage_tags(facts),
            }
        )
        if node.error is not None:
            plan.tags["error_type"] = type(node.error).__name__
            plan.tags["error_message"] = str(node.error)
        if options.log_artifacts:
            plan.artifacts.update(_call_artifacts(own_facts))
            plan.artifacts.update(node.artifacts)
            if node.error is not None:
                plan.artifacts["error.txt"] = _format_exception(node.error)
        _cap_artifacts(plan, options.max_artifact_chars)
        for child in node.children:
            plan.children.append(self._node_plan(child, options, facts_by_node, common_tags))
        return plan

    @staticmethod
    def _set_params(plan: RunPlan, params: Mapping[str, Any], options: AssembleOptions) -> None:
        for key, value in params.items():
            text = value if isinstance(value, str) else _param_text(value)
            name = sanitize_key(str(key))
            if is_secret_key(name) or type(value).__name__ == "SecretStr":
                text = SECRET_MASK
            if len(text) > options.max_param_chars:
                if options.log_artifacts:
                    plan.artifacts[f"params/{name}.txt"] = text
                marker = f"...[truncated; full value in params/{name}.txt]"
                text = text[: options.max_param_chars - len(marker)] + marker
            plan.params[name] = text


# ---- helpers -----------------------------------------------------------------------------------


def sanitize_key(key: str) -> str:
    """MLflow names allow alphanumerics, _ - . space : / only; replace the rest."""
    cleaned = _INVALID_NAME_CHARS.sub("_", key).strip() or "_"
    return cleaned[:250]


def _param_text(value: Any) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return str(value)
    try:
        return json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


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
    tags: dict[str, str] = {sanitize_key(k): str(v) for k, v in options.static_tags.items()}
    for key in (*ATTRIBUTION_KEYS, *options.tag_metadata_keys):
        value = metadata.get(key)
        if value is not None and value != "":
            tags[sanitize_key(key)] = str(value)[:MAX_TAG_VALUE]
    ca_tags = metadata.get("ca_tags")
    if isinstance(ca_tags, Mapping):
        tags.update({sanitize_key(str(k)): str(v)[:MAX_TAG_VALUE] for k, v in ca_tags.items()})
    return {k: (SECRET_MASK if is_secret_key(k) else v) for k, v in tags.items()}


def _usage_tags(facts: list[CallFacts]) -> dict[str, str]:
    tags: dict[str, str] = {}
    unpriced = sorted({f.model or "<unknown model>" for f in facts if not f.priced})
    if unpriced:
        tags["pricing"] = "unknown"
        tags["unpriced_models"] = ",".join(unpriced)[:MAX_TAG_VALUE]
    if any(f.usage.estimated for f in facts):
        tags["tokens_estimated"] = "true"
        methods = sorted({f.usage.method for f in facts if f.usage.estimated and f.usage.method})
        if methods:
            tags["tokens_estimation_method"] = ",".join(methods)
    hints = {f.hint for f in facts if f.hint}
    if hints:
        tags["usage_hint"] = next(iter(hints))[:MAX_TAG_VALUE]
    if any(f.usage.llm_cache_hit for f in facts):
        tags["llm_cache_hit"] = "true"
    return tags


def _prompt_text(call: LLMCallRecord) -> str:
    if call.messages is not None:
        batches = call.messages
        if len(batches) == 1:
            return render_messages(batches[0])
        return "\n\n".join(
            f"--- prompt {i} ---\n{render_messages(b)}" for i, b in enumerate(batches, 1)
        )
    return "\n\n".join(call.prompts or [])


def _response_text(call: LLMCallRecord) -> str:
    if call.error is not None:
        return f"<error: {type(call.error).__name__}: {call.error}>"
    response = call.response
    if response is None:
        return ""
    texts = []
    for generations in getattr(response, "generations", None) or []:
        for generation in generations:
            message = getattr(generation, "message", None)
            if message is not None:
                texts.append(render_messages([message]))
            else:
                texts.append(content_text(getattr(generation, "text", "")))
    return "\n\n".join(texts)


def _call_artifacts(facts: list[CallFacts]) -> dict[str, str]:
    if not facts:
        return {}
    if len(facts) == 1:
        return {"prompt.txt": facts[0].prompt_text, "response.txt": facts[0].response_text}
    prompts, responses = [], []
    for i, f in enumerate(facts, 1):
        header = f"=== call {i} ({f.model or 'model'}) ==="
        prompts.append(f"{header}\n{f.prompt_text}")
        responses.append(f"{header}\n{f.response_text}")
    return {"prompt.txt": "\n\n".join(prompts), "response.txt": "\n\n".join(responses)}


def _cap_artifacts(plan: RunPlan, limit: int) -> None:
    for path, text in list(plan.artifacts.items()):
        capped, was_cut = truncate(text, limit)
        if was_cut:
            plan.artifacts[path] = capped
            plan.tags[f"truncated.{sanitize_key(path)}"] = str(len(text))


def _format_exception(error: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(error))
    except Exception:
        return f"{type(error).__name__}: {error}"


def _run_name(workflow: WorkflowRecord, template: str | None) -> str:
    if not template:
        return workflow.name
    import datetime as dt

    started = dt.datetime.fromtimestamp(workflow.start_ns / 1e9, tz=dt.UTC)
    values: dict[str, Any] = {
        k: v for k, v in workflow.metadata.items() if isinstance(k, str) and k.isidentifier()
    }
    values.update(
        workflow_name=workflow.name,
        workflow_version=workflow.version or "",
        timestamp=started.strftime("%Y%m%d-%H%M%S"),
        date=started.strftime("%Y-%m-%d"),
    )
    try:
        return template.format_map(_Missing(values))
    except (ValueError, IndexError):
        return workflow.name


class _Missing(dict):
    """Leaves unknown template fields visible rather than failing the run."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _redact_plan(plan: RunPlan, redact: Callable[[str], str]) -> None:
    plan.params = {k: redact(v) for k, v in plan.params.items()}
    plan.tags = {k: (v if k in _UNREDACTED_TAGS else redact(v)) for k, v in plan.tags.items()}
    plan.artifacts = {k: redact(v) for k, v in plan.artifacts.items()}


# Identifiers we write ourselves: never PII, and redacting them would break lookups.
_UNREDACTED_TAGS = frozenset({"langchain_run_id", KIND_TAG, "status"})
