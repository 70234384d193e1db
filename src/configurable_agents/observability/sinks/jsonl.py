"""The JSON Lines sink: one line of facts per finished workflow, appended to a local file.

For air-gapped debugging (read the numbers without any server) and for piping
into other tools (``jq``, a log shipper, a warehouse loader). Each line carries
the same priced, redacted facts every other sink gets: identity, attribution,
status, totals, each node's and each model call's usage and cost. Prompts and
responses are left out unless ``include_artifacts`` is set, since a file is easy
to copy around. Lines are written whole under a lock (one ``write`` each), so
several workers or processes appending to one file never interleave a line.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from configurable_agents.config.schema import JsonlConfig
from configurable_agents.names import Metric, Param
from configurable_agents.observability.facts.model import (
    CallFacts,
    NodeFacts,
    ToolFacts,
    WorkflowFacts,
)
from configurable_agents.observability.sinks.base import Sink

FORMAT_VERSION = 2
_OPEN_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_CLOEXEC", 0))


def facts_to_dict(facts: WorkflowFacts, *, include_artifacts: bool = False) -> dict[str, Any]:
    """The JSON-ready form of one workflow's facts (the line the sink writes).

    Sink-neutral names (the fact tree's fields), not MLflow's run keys; ``caller`` is the
    invocation's ``ca_*`` metadata, kept apart from the computed numbers.
    """
    totals, usage = facts.totals, facts.totals.usage
    out: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "langchain_run_id": facts.langchain_run_id,
        "workflow_name": facts.name,
        "workflow_version": facts.version,
        "run_name": facts.display_name,
        "kind": facts.kind,
        "status": facts.status,
        "stop_reason": facts.stop_reason,
        "start_ns": facts.start_ns,
        "end_ns": facts.end_ns,
        "sampled_out": facts.sampled_out,
        "attribution": dict(facts.attribution),
        "params": dict(facts.params),
        Param.GLOBAL_MODEL: facts.global_model,
        "totals": {
            "duration_s": totals.duration_s,
            "input_tokens": usage.input,
            "output_tokens": usage.output,
            "cache_read_tokens": usage.cache_read,
            "cache_write_tokens": usage.cache_write,
            "reasoning_tokens": usage.reasoning,
            "total_tokens": usage.total or usage.input + usage.output,
            "cost_usd": totals.cost_usd,
            Metric.NODE_COUNT: totals.node_count,
            "llm_calls": totals.llm_calls,
            "retries": totals.retries,
            "fallbacks": totals.fallbacks,
            "unpriced_models": list(totals.unpriced_models),
            "tokens_estimated": totals.tokens_estimated,
        },
        "caller": {
            "params": dict(facts.caller.params),
            "metrics": dict(facts.caller.metrics),
            "tags": dict(facts.caller.tags),
        },
        "error": _error(facts.error),
        "calls": [_call_dict(c, include_artifacts) for c in facts.direct.calls]
        if facts.direct is not None else [],
        "nodes": [_node_dict(n, include_artifacts) for n in facts.nodes],
    }
    if include_artifacts:
        out["inputs"], out["outputs"] = facts.inputs, facts.outputs
    return out


def _error(error: Any) -> dict[str, str] | None:
    return None if error is None else {"type": error.type, "message": error.message}


def _node_dict(node: NodeFacts, include_artifacts: bool) -> dict[str, Any]:
    calls = list(node.all_calls())
    return {
        "node_id": node.node_id,
        "status": node.status,
        "start_ns": node.start_ns,
        "end_ns": node.end_ns,
        "retries": node.retries,
        "input_tokens": sum(c.usage.input for c in calls),
        "output_tokens": sum(c.usage.output for c in calls),
        "cost_usd": round(sum(c.cost_usd for c in calls), 8),
        "error": _error(node.error),
        "calls": [_call_dict(c, include_artifacts) for c in node.calls],
        "tools": [_tool_dict(t, include_artifacts) for t in node.tools],
        "children": [_node_dict(c, include_artifacts) for c in node.children],
    }


def _tool_dict(tool: ToolFacts, include_artifacts: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name, "kind": tool.kind, "start_ns": tool.start_ns,
                           "end_ns": tool.end_ns, "error": _error(tool.error)}
    if include_artifacts:
        out["arguments"], out["result"] = tool.arguments, tool.result
    return out


def _call_dict(call: CallFacts, include_artifacts: bool) -> dict[str, Any]:
    usage = call.usage
    out: dict[str, Any] = {
        "model": call.model,
        "provider": call.provider,
        "start_ns": call.start_ns,
        "end_ns": call.end_ns,
        "input_tokens": usage.input,
        "output_tokens": usage.output,
        "cache_read_tokens": usage.cache_read,
        "cache_write_tokens": usage.cache_write,
        "reasoning_tokens": usage.reasoning,
        "tokens_estimated": usage.estimated,
        "cost_usd": call.cost_usd,
        "priced": call.priced,
        "cost_source": call.cost_source,
        "error": call.error.type if call.error is not None else None,
    }
    if include_artifacts:
        out["prompt"], out["response"] = call.prompt_text, call.response_text
    return out


class JsonlSink(Sink):
    """Appends one JSON object per workflow to ``config.path``."""

    name = "jsonl"

    def __init__(self, config: JsonlConfig) -> None:
        super().__init__()
        self.config = config
        self.path = Path(config.path).expanduser()
        self._lock = threading.Lock()

    def export(self, facts: WorkflowFacts) -> None:
        line = json.dumps(
            facts_to_dict(facts, include_artifacts=self.config.include_artifacts),
            ensure_ascii=False, default=str, allow_nan=False,
        )
        data = (line + "\n").encode("utf-8", errors="surrogatepass")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND: each write lands whole at the end, even with other processes.
            # O_NOFOLLOW: a symlink planted at the path is refused (ELOOP), never followed,
            # and a dangling link's target is never created (as the spool opens its files).
            fd = os.open(self.path, _OPEN_FLAGS, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        self.counters.add("exported")
