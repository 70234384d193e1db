"""Property test (issue #26): arbitrary invocation metadata -> every sink, at once.

Whatever the metadata says (forged identity keys, caller namespaces, odd text), the app's
answer is unchanged, no sink fails or counts an internal error, the JSONL lines parse,
the Prometheus scrape parses within its series bound and every span keeps its own
attributes. (Values whose ``__str__`` raises and lone surrogates are #24's item 7 and
covered there.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from configurable_agents.config.otel_config import OTelConfig
from configurable_agents.config.prometheus_config import PrometheusConfig
from configurable_agents.config.schema import JsonlConfig, MLFlowConfig, ObservabilityConfig
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.sinks.otel import OTelSink
from configurable_agents.observability.sinks.prometheus.sink import current_metrics

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3)
                      | st.dictionaries(text, c, max_size=3), max_leaves=10)
keys = st.sampled_from(["workflow_name", "workflow_version", "tenant_id", "user_id", "team",
                        "thread_id", "session_id", "run_name", "langgraph_node"]) | text
metadata = st.fixed_dictionaries(
    {},
    optional={
        "ca_tags": st.dictionaries(text, text, max_size=60),
        "ca_params": st.dictionaries(text, values, max_size=5),
        "ca_metrics": st.dictionaries(text, st.floats(allow_nan=False) | text, max_size=5),
    },
).flatmap(lambda base: st.dictionaries(keys, values, max_size=6).map(lambda m: {**m, **base}))


def test_metadata_reaches_every_sink_without_breaking_any(
    tmp_path: Path, mlflow_store: str, experiment_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.prometheus_graphs import fresh_process_metrics

    fresh_process_metrics(monkeypatch)
    lines = tmp_path / "facts.jsonl"
    exporter = InMemorySpanExporter()
    handler = MLflowCallbackHandler(
        ObservabilityConfig(
            mlflow=MLFlowConfig(enabled=True, tracking_uri=mlflow_store,
                                experiment_name=experiment_name, redact_pii=True),
            jsonl=JsonlConfig(enabled=True, path=str(lines)),
            prometheus=PrometheusConfig(enabled=True, attribution_labels=["team"],
                                        max_series=400),
        ),
        sinks=[OTelSink(OTelConfig(enabled=True, capture_content=True), exporter=exporter)],
        workflow_name="fuzzed",
    )
    app = RunnableLambda(lambda x: {"echo": x})
    seen = 0

    @settings(max_examples=12, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(metadata)
    def check(meta: dict[str, Any]) -> None:
        nonlocal seen
        assert app.invoke({"q": 1}, config={"callbacks": [handler], "metadata": meta}) == {
            "echo": {"q": 1}}
        seen += 1

    try:
        check()
        assert handler.flush(60)
        stats = handler.stats()
    finally:
        handler.close(30)
    assert stats.internal_errors == 0
    for name, sink in stats.sinks.items():
        assert sink.failed == 0 and sink.dropped == 0, name
    assert stats.sinks["jsonl"].exported == seen
    # JSON Lines are split on "\n" only (str.splitlines would also split on U+2028...).
    rows = lines.read_text("utf-8").split("\n")
    assert rows[-1] == "" and len([json.loads(row) for row in rows[:-1]]) == seen
    metrics = current_metrics()
    assert metrics is not None
    samples = [s for f in text_string_to_metric_families(generate_latest(metrics.registry)
                                                          .decode()) for s in f.samples]
    assert sum(s.value for s in samples
               if s.name == "configurable_agents_workflow_runs_total") == seen
    assert {s.labels["workflow"] for s in samples if "workflow" in s.labels} <= {"fuzzed"}
    roots = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_workflow")]
    assert len(roots) == seen
    for span in roots:
        attributes = dict(span.attributes or {})
        assert attributes["gen_ai.operation.name"] == "invoke_workflow"
        assert "configurable_agents.total_cost_usd" in attributes
        assert span.dropped_attributes == 0
