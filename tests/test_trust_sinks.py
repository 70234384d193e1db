"""Trust boundaries, round 3 (issue #26): what invocation metadata can do to the sinks.

Caller tags never evict the span's own attributes (and raise no SDK warnings); the
JSONL sink never follows a symlink planted at its path.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from configurable_agents.config.otel_config import OTelConfig
from configurable_agents.config.schema import JsonlConfig, ObservabilityConfig
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.sinks.otel import OTelSink


def _failing(_: dict) -> dict:
    raise ValueError("bad input")


def test_200_caller_tags_never_evict_the_spans_own_attributes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = InMemorySpanExporter()
    sink = OTelSink(OTelConfig(enabled=True), exporter=exporter)
    handler = MLflowCallbackHandler(ObservabilityConfig(), sinks=[sink],
                                    workflow_name="checkout", workflow_version="3")
    tags = {f"t{i:03d}": f"v{i}" for i in range(200)}
    chain = RunnableLambda(_failing)
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError, match="bad input"):
        chain.invoke({"q": 1}, config={"callbacks": [handler], "metadata": {"ca_tags": tags}})
    handler.flush(10)
    handler.close(10)
    (root,) = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_workflow")]
    attributes = dict(root.attributes or {})
    assert attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert attributes["gen_ai.workflow.name"] == "checkout"
    assert attributes["configurable_agents.total_cost_usd"] == 0.0
    assert attributes["configurable_agents.status"] == "FAILED"
    assert attributes["error.type"] == "ValueError"
    assert root.status.status_code.name == "ERROR"
    caller = [k for k in attributes if re.fullmatch(r"configurable_agents\.t\d{3}", k)]
    assert 0 < len(caller) < 200
    assert attributes["configurable_agents.caller_attributes_dropped"] == 200 - len(caller)
    assert root.dropped_attributes == 0
    assert not [r for r in caplog.records if "Attributes dict is full" in r.getMessage()]


def _jsonl_handler(path: Path) -> MLflowCallbackHandler:
    return MLflowCallbackHandler(
        ObservabilityConfig(jsonl=JsonlConfig(enabled=True, path=str(path))))


def test_jsonl_sink_never_follows_a_symlink_at_its_path(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    link = tmp_path / "facts.jsonl"
    link.symlink_to(victim)
    dangling = tmp_path / "dangling.jsonl"
    target = tmp_path / "created-by-us"
    dangling.symlink_to(target)
    for path in (link, dangling):
        handler = _jsonl_handler(path)
        RunnableLambda(lambda x: x).invoke({"a": 1}, config={"callbacks": [handler]})
        handler.flush(10)
        stats = handler.stats()
        handler.close(10)
        assert stats.sinks["jsonl"].failed == 1 and stats.sinks["jsonl"].exported == 0
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert not target.exists() and os.path.islink(dangling)
