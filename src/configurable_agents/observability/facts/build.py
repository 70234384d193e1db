"""A finished WorkflowRecord -> the frozen WorkflowFacts tree, computed and cleaned once.

Pure and off the caller's thread: usage extraction, pricing, serialization and the
one privacy pass (:class:`.content.Cleaner`) all happen here. Every piece of caller
metadata is read field by field, so a value whose ``__str__`` raises or a lone
surrogate costs that field only, never the workflow.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from configurable_agents.names import ATTRIBUTION_KEYS, Status, StopReason
from configurable_agents.observability.capture.records import NodeRecord, WorkflowRecord
from configurable_agents.observability.facts.calls import price_call
from configurable_agents.observability.facts.content import Cleaner, generations, safe_str
from configurable_agents.observability.facts.errors import error_facts
from configurable_agents.observability.facts.model import (
    CallerMetadata,
    CallFacts,
    NodeFacts,
    ToolFacts,
    Totals,
    WorkflowFacts,
)
from configurable_agents.observability.facts.serialization import (
    SECRET_MASK,
    is_secret_key,
    to_json_text,
)
from configurable_agents.observability.facts.token_usage import TokenUsage

#: Caller metadata keys (invocation ``metadata``) that form the caller's own namespace.
CALLER_PARAMS, CALLER_METRICS, CALLER_TAGS, CALLER_ARTIFACTS = (
    "ca_params", "ca_metrics", "ca_tags", "ca_artifacts",
)
MAX_TEXT = 5000  # one attribution or caller tag value


@dataclass(slots=True)
class FactOptions:
    """Per-handler settings the facts need (sink-neutral)."""

    workflow_params: Mapping[str, Any] = field(default_factory=dict)
    static_tags: Mapping[str, str] = field(default_factory=dict)
    tag_metadata_keys: tuple[str, ...] = ()
    run_name_template: str | None = None
    redact: Callable[[str], str] | None = None


def build_facts(
    workflow: WorkflowRecord, options: FactOptions, price_book: Any
) -> WorkflowFacts:
    """The workflow's facts (see :mod:`.model`)."""
    clean = Cleaner(options.redact)
    calls: dict[int, tuple[CallFacts, ...]] = {}
    for node in _nodes_with_direct(workflow):
        calls[id(node)] = tuple(price_call(c, price_book, clean) for c in node.llm_calls)
    nodes = tuple(_node(n, calls, clean) for n in workflow.nodes)
    direct = _node(workflow.direct, calls, clean) if workflow.direct is not None else None
    all_calls = [c for group in calls.values() for c in group]
    status = _status(workflow)
    end_ns = workflow.end_ns or workflow.start_ns
    caller = caller_metadata(workflow.metadata, clean)
    params = _params(options.workflow_params, clean)
    models = [c.model for c in all_calls if c.model]
    temperature = next((c.temperature for c in all_calls if c.temperature is not None), None)
    outputs = None
    if status in (Status.FINISHED, Status.INTERRUPTED):
        outputs = clean.content(_root_outputs(workflow))
    return WorkflowFacts(
        run_id=workflow.run_id,
        name=clean.text(workflow.name),
        version=clean.opt(workflow.version),
        kind=workflow.kind,
        display_name=_display_name(workflow, options.run_name_template, clean),
        start_ns=workflow.start_ns,
        end_ns=end_ns,
        status=status,
        stop_reason=(workflow.stop_reason or StopReason.CLOSED_EARLY)
        if status == Status.KILLED else None,
        interrupt_kind=workflow.interrupt_kind if status == Status.INTERRUPTED else None,
        interrupted_at=tuple(clean.text(n) for n in workflow.interrupted_at)
        if status == Status.INTERRUPTED else (),
        error=error_facts(workflow.error, clean),
        totals=_totals(workflow, all_calls, end_ns),
        params=MappingProxyType(params),
        global_model=max(set(models), key=models.count) if models else None,
        global_temperature=temperature,
        attribution=MappingProxyType(attribution(workflow.metadata, options, clean)),
        caller=caller,
        inputs=clean.content(workflow.inputs),
        outputs=outputs,
        nodes=nodes,
        direct=direct,
        sink_state=MappingProxyType(workflow.sink_state),
        configured_name=clean.text(workflow.configured_name),
        configured_version=clean.opt(workflow.configured_version),
        metadata_text=MappingProxyType(_metadata_text(workflow.metadata, clean)),
    )


def build_start_facts(workflow: WorkflowRecord, options: FactOptions) -> WorkflowFacts:
    """Identity and attribution of a workflow still running (no nodes, calls or totals)."""
    clean = Cleaner(options.redact)
    return WorkflowFacts(
        run_id=workflow.run_id,
        name=clean.text(workflow.name),
        version=clean.opt(workflow.version),
        kind=workflow.kind,
        display_name=_display_name(workflow, options.run_name_template, clean),
        start_ns=workflow.start_ns,
        end_ns=workflow.start_ns,
        status="RUNNING",
        stop_reason=None,
        interrupt_kind=None,
        interrupted_at=(),
        error=None,
        totals=Totals(TokenUsage(), 0.0, 0.0, 0, 0, 0, 0, (), False, (), None, False),
        params=MappingProxyType({}),
        global_model=None,
        global_temperature=None,
        attribution=MappingProxyType(attribution(workflow.metadata, options, clean)),
        caller=caller_metadata(workflow.metadata, clean),
        inputs=None,
        outputs=None,
        nodes=(),
        direct=None,
        sink_state=MappingProxyType(workflow.sink_state),
        metadata_text=MappingProxyType(_metadata_text(workflow.metadata, clean)),
    )


# ---- parts ---------------------------------------------------------------------------------------


def attribution(
    metadata: Mapping[str, Any], options: FactOptions, clean: Cleaner
) -> dict[str, str]:
    """Static tags, then ATTRIBUTION_KEYS and ``tag_metadata_keys`` from the metadata."""
    tags = {clean.text(k): clean.text(v, MAX_TEXT) for k, v in options.static_tags.items()}
    for key in (*ATTRIBUTION_KEYS, *options.tag_metadata_keys):
        value = metadata.get(key)
        if value is not None and value != "":
            tags[clean.text(key)] = clean.text(value, MAX_TEXT)
    return {k: (SECRET_MASK if is_secret_key(k) else v) for k, v in tags.items()}


def caller_metadata(metadata: Mapping[str, Any], clean: Cleaner) -> CallerMetadata:
    def mapping(key: str) -> Mapping[str, Any]:
        raw = metadata.get(key)
        return raw if isinstance(raw, Mapping) else {}

    params = _params(mapping(CALLER_PARAMS), clean)
    metrics = {
        clean.text(k): float(v) for k, v in _items(mapping(CALLER_METRICS))
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    tags = {}
    for k, v in _items(mapping(CALLER_TAGS)):
        name = clean.text(k)
        tags[name] = SECRET_MASK if is_secret_key(name) else clean.text(v, MAX_TEXT)
    artifacts = {
        clean.text(k): clean.text(v) if isinstance(v, str) else clean.text(to_json_text(v))
        for k, v in _items(mapping(CALLER_ARTIFACTS))
    }
    return CallerMetadata(
        MappingProxyType(params), MappingProxyType(metrics), MappingProxyType(tags),
        MappingProxyType(artifacts),
    )


def _params(raw: Mapping[str, Any], clean: Cleaner) -> dict[str, str]:
    """Params as text; secret-named ones (``api_key``, a ``SecretStr``) masked."""
    out = {}
    for k, v in _items(raw):
        name = clean.text(k)
        secret = is_secret_key(name) or type(v).__name__ == "SecretStr"
        out[name] = SECRET_MASK if secret else _param_text(v, clean)
    return out


def _items(raw: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    try:
        return list(raw.items())
    except Exception:  # a hostile mapping: its entries are lost, not the workflow
        return []


def _param_text(value: Any, clean: Cleaner) -> str:
    import json

    if isinstance(value, str):
        return clean.text(value)
    if isinstance(value, bool | int | float) or value is None:
        return str(value)
    try:
        text = json.dumps(value, default=safe_str, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        text = safe_str(value) if not isinstance(value, Mapping | list | tuple) else (
            f"<{type(value).__name__} nested too deep to log>"
        )
    return clean.text(text)


def _metadata_text(metadata: Mapping[str, Any], clean: Cleaner) -> dict[str, str]:
    return {
        k: clean.text(v)
        for k, v in _items(metadata)
        if isinstance(k, str) and k.isidentifier() and isinstance(v, str | int | float | bool)
    }


def _node(
    node: NodeRecord, calls: Mapping[int, tuple[CallFacts, ...]], clean: Cleaner
) -> NodeFacts:
    failed = node.status == Status.FAILED
    return NodeFacts(
        node_id=clean.text(node.node_id) if node.node_id is not None else None,
        run_id=node.run_id,
        start_ns=node.start_ns,
        end_ns=node.end_ns,
        status=node.status,
        step=node.step,
        checkpoint_ns=clean.opt(node.checkpoint_ns),
        retries=node.retries,
        handoff_to=clean.opt(node.handoff_to),
        error=error_facts(node.error, clean),
        inputs=clean.content(node.inputs),
        outputs=None if failed else clean.content(node.outputs),
        calls=calls.get(id(node), ()),
        tools=tuple(_tool(t, clean) for t in node.tool_calls),
        children=tuple(_node(c, calls, clean) for c in node.children),
        params=MappingProxyType(_params(node.params, clean)),
        artifacts=MappingProxyType(
            {clean.text(k): clean.text(v) for k, v in _items(node.artifacts)}
        ),
        custom_metrics=MappingProxyType({
            clean.text(k): float(v) for k, v in _items(node.custom_metrics)
            if isinstance(v, int | float) and not isinstance(v, bool)
        }),
    )


def _tool(tool: Any, clean: Cleaner) -> ToolFacts:
    from configurable_agents.observability.facts.content import tool_output

    raw = tool.input
    call_id = None
    if isinstance(raw, Mapping):
        value = raw.get("tool_call_id") or raw.get("id")
        call_id = safe_str(value) if value else None
    return ToolFacts(
        run_id=tool.run_id,
        name=clean.text(tool.name),
        kind=tool.kind,
        start_ns=tool.start_ns,
        end_ns=tool.end_ns,
        call_id=call_id,
        arguments=clean.content(raw),
        result=None if tool.error is not None else clean.content(tool_output(tool.output)),
        error=error_facts(tool.error, clean),
    )


def _totals(workflow: WorkflowRecord, calls: list[CallFacts], end_ns: int) -> Totals:
    all_nodes = workflow.all_nodes()
    retries = sum(n.retries for n in all_nodes) + workflow.retries_outside_nodes
    if workflow.direct is not None:
        retries += workflow.direct.retries
    methods = sorted({c.usage.method for c in calls if c.usage.estimated and c.usage.method})
    hints = [c.hint for c in calls if c.hint]
    return Totals(
        usage=sum((c.usage for c in calls), TokenUsage()),
        cost_usd=round(sum(c.cost_usd for c in calls), 8),
        duration_s=round((end_ns - workflow.start_ns) / 1e9, 6),
        node_count=len(all_nodes),
        llm_calls=len(calls),
        retries=retries,
        fallbacks=workflow.fallbacks,
        unpriced_models=tuple(sorted({c.model or "<unknown model>" for c in calls
                                      if not c.priced})),
        tokens_estimated=any(c.usage.estimated for c in calls),
        estimation_methods=tuple(methods),
        usage_hint=hints[0] if hints else None,
        llm_cache_hit=any(c.usage.llm_cache_hit for c in calls),
    )


def _root_outputs(workflow: WorkflowRecord) -> Any:
    """A bare model call's output as OpenAI-shaped choices; any other root's as it is."""
    raw = workflow.outputs
    if workflow.kind != "llm" or not hasattr(raw, "generations"):
        return raw
    out = [{"choices": list(batch)} for batch in generations(raw)]
    return out[0] if len(out) == 1 else (out or None)


def _status(workflow: WorkflowRecord) -> str:
    if workflow.status in (Status.FAILED, Status.KILLED):
        return workflow.status
    return Status.INTERRUPTED if workflow.interrupted else Status.FINISHED


def _nodes_with_direct(workflow: WorkflowRecord) -> list[NodeRecord]:
    nodes = workflow.all_nodes()
    if workflow.direct is not None:
        nodes.append(workflow.direct)
    return nodes


def _display_name(workflow: WorkflowRecord, template: str | None, clean: Cleaner) -> str:
    """The template, or by default ``{workflow_name} v{version} {short_id}``.

    The short id (the last 8 hex digits of the LangChain run id; its first digits are a
    timestamp) tells runs of one workflow apart at a glance. Each value is cleaned before
    it is placed, since a detector may not see an email once a template glues text to it.
    """
    short_id = workflow.run_id.hex[-8:]
    if not template:
        version = f" v{clean.text(workflow.version)}" if workflow.version else ""
        return f"{clean.text(workflow.name)}{version} {short_id}"
    started = dt.datetime.fromtimestamp(workflow.start_ns / 1e9, tz=dt.UTC)
    values: dict[str, Any] = _metadata_text(workflow.metadata, clean)
    values.update(
        workflow_name=clean.text(workflow.name),
        workflow_version=clean.text(workflow.version or ""),
        timestamp=started.strftime("%Y%m%d-%H%M%S"),
        date=started.strftime("%Y-%m-%d"),
        short_id=short_id,
        run_id=str(workflow.run_id),
    )
    try:
        return clean.text(template.format_map(_Missing(values)))
    except Exception:  # a bad template
        return clean.text(workflow.name)


class _Missing(dict):
    """Leaves unknown template fields visible rather than failing the run."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
