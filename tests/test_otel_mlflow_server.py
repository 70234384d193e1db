"""A real ``mlflow server`` as the OTLP receiver (/v1/traces, x-mlflow-experiment-id).

The sink's spans must arrive as one MLflow trace with the same tree, and MLflow's own
translation of the GenAI conventions must show the token counts the facts computed.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlflow import MlflowClient

from configurable_agents.config.otel_config import OTelConfig
from configurable_agents.observability.sinks.otel import OTelSink
from tests.otel_facts import facts_for, two_node_record
from tests.servers import MlflowServer


def _token_usage(span: object) -> dict[str, int]:
    raw = span.attributes.get("mlflow.chat.tokenUsage")  # type: ignore[attr-defined]
    return json.loads(raw) if isinstance(raw, str) else dict(raw or {})


def test_spans_arrive_as_one_mlflow_trace_with_the_same_tree_and_tokens(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment_id = client.create_experiment("otel-otlp")
    sink = OTelSink(
        OTelConfig(
            enabled=True,
            endpoint=mlflow_server.url,
            protocol="http/protobuf",
            headers={"x-mlflow-experiment-id": experiment_id},
            # The server's first /v1/traces request loads its OTLP translation; on a busy
            # CI machine that alone can pass the exporter's 10 s default.
            timeout_s=90,
        )
    )
    facts = facts_for(two_node_record())
    sink.export(facts)
    assert sink.close(120)
    assert sink.span_stats()["delivered"] == 7

    traces = client.search_traces(locations=[experiment_id])
    assert len(traces) == 1
    spans = {s.name: s for s in traces[0].data.spans}
    assert set(spans) == {
        "invoke_workflow planner", "invoke_agent plan", "invoke_agent act",
        "invoke_agent inner", "chat gemini-2.5-flash", "execute_tool search",
    }
    root = spans["invoke_workflow planner"]
    assert root.parent_id is None
    act, inner = spans["invoke_agent act"], spans["invoke_agent inner"]
    assert inner.parent_id == act.span_id and act.parent_id == root.span_id
    assert spans["execute_tool search"].parent_id == inner.span_id

    chats = [s for s in traces[0].data.spans if s.name == "chat gemini-2.5-flash"]
    assert all(s.span_type == "CHAT_MODEL" for s in chats)
    usages = sorted((_token_usage(s) for s in chats), key=lambda u: u["input_tokens"])
    expected = sorted(
        (f.usage for _, f in facts.model_calls()), key=lambda u: u.input
    )
    for got, want in zip(usages, expected, strict=True):
        assert got["input_tokens"] == want.input
        assert got["output_tokens"] == want.output
    # MLflow's trace-level total equals the parent run's ADR metrics.
    trace_usage = traces[0].info.token_usage
    assert trace_usage["input_tokens"] == facts.totals.usage.input == 300
    assert trace_usage["output_tokens"] == facts.totals.usage.output == 100
