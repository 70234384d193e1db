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


# ---- Prometheus: bounded series, metadata labels off by default --------------------------------


def _scrape(handler: MLflowCallbackHandler) -> tuple[bytes, list]:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from configurable_agents.observability.sinks.prometheus.sink import current_metrics

    metrics = current_metrics()
    assert metrics is not None
    body = generate_latest(metrics.registry)
    samples = [s for f in text_string_to_metric_families(body.decode()) for s in f.samples]
    return body, samples


def _runs(samples: list, workflow: str) -> float:
    return sum(s.value for s in samples if s.name == "configurable_agents_workflow_runs_total"
               and s.labels["workflow"] == workflow)


HOSTILE = [f"evil-{i:02d}-{'x' * 20}" for i in range(50)]


def test_hostile_metadata_workflow_names_are_not_labels_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.fakes import repeating
    from tests.prometheus_graphs import fresh_process_metrics, prometheus_handler

    fresh_process_metrics(monkeypatch)
    handler = prometheus_handler(metadata_workflow_names=False)
    handler.workflow_name, handler.workflow_version = "checkout", "3"
    model = repeating()
    for name in [*HOSTILE, "checkout"]:
        model.invoke("hi", config={"callbacks": [handler],
                                   "metadata": {"workflow_name": name, "workflow_version": name}})
    assert handler.flush(30)
    body, samples = _scrape(handler)
    handler.close(10)
    assert b"evil-" not in body
    assert _runs(samples, "checkout") == 51
    assert {s.labels["workflow_version"] for s in samples
            if s.name == "configurable_agents_workflow_runs_total"} == {"3"}


def test_known_workflow_names_are_never_starved_by_unknown_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.fakes import repeating
    from tests.prometheus_graphs import fresh_process_metrics, prometheus_handler

    fresh_process_metrics(monkeypatch)
    handler = prometheus_handler(metadata_workflow_names=True, workflows=["checkout"])
    model = repeating()
    for name in [*HOSTILE, "late-unknown", "checkout"]:
        model.invoke("hi", config={"callbacks": [handler], "metadata": {"workflow_name": name}})
    assert handler.flush(30)
    _, samples = _scrape(handler)
    handler.close(10)
    assert _runs(samples, "checkout") == 1  # known: its own label although 50 came first
    assert _runs(samples, "other") == 1  # the 51st unknown name is folded
    assert _runs(samples, "late-unknown") == 0


def test_3000_invocations_with_metadata_labels_keep_series_and_scrape_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from configurable_agents.config.pipeline_config import PipelineConfig
    from configurable_agents.config.prometheus_config import PrometheusConfig
    from tests.fakes import repeating
    from tests.prometheus_graphs import fresh_process_metrics, prometheus_handler

    fresh_process_metrics(monkeypatch)
    labels = ["team", "tenant_id", "cost_center", "region"]
    # 3,000 quick invocations outrun the sink's worker: apply back-pressure rather than
    # drop (the default for a full queue), so the counts below are exact.
    handler = prometheus_handler(metadata_workflow_names=True, workflows=["checkout"],
                                 attribution_labels=labels, max_label_values=1000,
                                 pipeline=PipelineConfig(block_on_full=True))
    max_series = PrometheusConfig().max_series
    models = [repeating(model=f"model-{i}") for i in range(7)]
    for i in range(3000):
        metadata = {"workflow_name": "checkout" if i % 10 == 0 else f"wf-{i % 997}",
                    **{label: f"{label}-{i * 7 % 1009}-{i}" for label in labels}}
        models[i % 7].invoke("hi", config={"callbacks": [handler], "metadata": metadata})
    assert handler.flush(120)
    body, samples = _scrape(handler)
    handler.close(10)
    ours = [s for s in samples if not s.name.startswith(("python_", "process_"))]
    # The budget plus the overflow label sets (fixed domains x known names) and the
    # exporter-health and fold-counter series.
    assert len(ours) <= max_series + 500, len(ours)
    assert len(body) < 1_500_000, len(body)
    assert _runs(samples, "checkout") == 300  # the known workflow counted in full
    assert sum(s.value for s in samples
               if s.name == "configurable_agents_workflow_runs_total") == 3000
