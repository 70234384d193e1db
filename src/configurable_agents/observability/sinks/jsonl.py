"""The JSON Lines sink: one line of facts per finished workflow, appended to a local file.

For air-gapped debugging (read the numbers without any server) and for piping
into other tools (``jq``, a log shipper, a warehouse loader). Each line carries
the same priced, redacted facts every other sink gets: the parent run's params,
metrics and tags, each node's, and each model call's usage and cost. Prompts and
responses are left out unless ``include_artifacts`` is set, since a file is easy
to copy around. Lines are written whole under a lock (``flock`` across processes),
so several workers or processes appending to one file never interleave a line, and
a short write (disk full) is cut back and counted as failed, never as exported.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
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
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                append_whole(fd, data)
            finally:
                os.close(fd)
        self.counters.add("exported")


def append_whole(fd: int, data: bytes) -> None:
    """Append ``data`` whole or not at all, so the file stays one JSON object per line.

    A full disk (or a file-size limit) makes ``write`` return short or fail midway; the
    partial line would be counted as written and glue onto the next one. Under an
    exclusive ``flock`` (other processes appending to the same file wait) the file is cut
    back to where this line began, and the error is raised: the worker counts it failed.
    """
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)  # O_APPEND: at the end
                if written <= 0:
                    raise OSError(errno.ENOSPC, "short write")
                view = view[written:]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
