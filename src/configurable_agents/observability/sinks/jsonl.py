"""The JSON Lines sink: one line of facts per finished workflow, appended to a local file.

For air-gapped debugging (read the numbers without any server) and for piping
into other tools (``jq``, a log shipper, a warehouse loader). Each line carries
the same priced, redacted facts every other sink gets: the parent run's params,
metrics and tags, each node's, and each model call's usage and cost. Prompts and
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
from configurable_agents.observability.facts.assemble import CallFacts, RunPlan
from configurable_agents.observability.facts.workflow_facts import WorkflowFacts
from configurable_agents.observability.sinks.base import Sink

FORMAT_VERSION = 1
_OPEN_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_CLOEXEC", 0))


def facts_to_dict(facts: WorkflowFacts, *, include_artifacts: bool = False) -> dict[str, Any]:
    """The JSON-ready form of one workflow's facts (the line the sink writes)."""
    return {
        "format": FORMAT_VERSION,
        "langchain_run_id": facts.langchain_run_id,
        "experiment": facts.experiment,
        "workflow_name": facts.workflow_name,
        "workflow_version": facts.workflow_version,
        "status": facts.status,
        "run": _plan_dict(facts.plan, include_artifacts, facts),
    }


def _plan_dict(plan: RunPlan, include_artifacts: bool, facts: WorkflowFacts) -> dict[str, Any]:
    own_calls = (
        [call for node, call in facts.model_calls() if node is plan]
        if plan is facts.plan
        else plan.calls
    )
    out: dict[str, Any] = {
        "name": plan.run_name,
        "start_ms": plan.start_ms,
        "end_ms": plan.end_ms,
        "status": plan.status,
        "params": plan.params,
        "metrics": plan.metrics,
        "tags": plan.tags,
        "calls": [_call_dict(call) for call in own_calls],
        "children": [_plan_dict(c, include_artifacts, facts) for c in plan.children],
    }
    if include_artifacts:
        out["artifacts"] = plan.artifacts
    return out


def _call_dict(call: CallFacts) -> dict[str, Any]:
    usage = call.usage
    return {
        "model": call.model,
        "provider": call.provider,
        "start_ns": call.call.start_ns,
        "end_ns": call.call.end_ns,
        "input_tokens": usage.input,
        "output_tokens": usage.output,
        "cache_read_tokens": usage.cache_read,
        "cache_write_tokens": usage.cache_write,
        "reasoning_tokens": usage.reasoning,
        "tokens_estimated": usage.estimated,
        "cost_usd": call.cost_usd,
        "priced": call.priced,
        "cost_source": call.cost_source,
        "error": type(call.call.error).__name__ if call.call.error is not None else None,
    }


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
