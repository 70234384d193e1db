"""One privacy pass: a planted e-mail, API key and card reach no sink's output.

Every metadata field a caller controls (workflow name and version, attribution, thread,
the handler's own tags and params, ``ca_params`` / ``ca_tags`` / ``ca_metrics`` keys,
``tag_metadata_keys`` values), the state, the prompt, the model's answer, the tool-call
arguments inside that answer, the tool's result and an error message all carry the three
secrets. With ``redact_pii`` on, the MLflow runs (params, metrics, tags, run names,
artifacts) and trace, the OpenTelemetry spans (content capture on), the Prometheus
exposition and the JSONL line must hold none of them: the facts boundary redacted them
once, for every sink.
"""

from __future__ import annotations

import json
import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from mlflow.tracking import MlflowClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest

from configurable_agents.config.otel_config import OTelConfig
from configurable_agents.config.schema import ObservabilityConfig
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.sinks.otel import OTelSink
from configurable_agents.observability.sinks.prometheus.sink import current_metrics
from tests.prometheus_graphs import fresh_process_metrics
from tests.test_traces import traces_of

EMAIL = "jane.doe@example.com"
CARD = "4111111111111111"
KEY = "sk-proj-" + "x1Y2" * 10
SECRETS = (EMAIL, CARD, KEY)
PLANTED = f"mail {EMAIL} card {CARD} key {KEY}"


class State(TypedDict, total=False):
    text: str
    fail: bool
    log: Annotated[list[str], operator.add]


@tool
def lookup(email: str, card: str) -> str:
    """Look a customer up by e-mail and card."""
    return f"customer {email} paid with {card}"


def graph() -> Any:
    def agent(state: State) -> dict[str, Any]:
        reply = AIMessage(
            content=f"calling lookup; {PLANTED}",
            tool_calls=[{"name": "lookup", "id": "call_1",
                         "args": {"email": EMAIL, "card": CARD}}],
            usage_metadata={"input_tokens": 12, "output_tokens": 7, "total_tokens": 19},
            response_metadata={"model_name": "gemini-2.5-flash"},
        )
        model = GenericFakeChatModel(messages=iter([reply]))
        answer = model.invoke([HumanMessage(f"help me: {PLANTED}")])
        result = lookup.invoke(answer.tool_calls[0]["args"])
        if state.get("fail"):
            raise ValueError(f"lookup failed for {PLANTED}")
        return {"text": result, "log": [PLANTED]}

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    return builder.compile()


def _mlflow_text(client: MlflowClient, experiment: str, tmp_path: Path) -> str:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    parts: list[str] = []
    for run in client.search_runs([exp.experiment_id], max_results=100):
        parts.append(json.dumps(run.to_dictionary(), default=str))
        target = tmp_path / run.info.run_id
        target.mkdir()
        folder = Path(client.download_artifacts(run.info.run_id, "", str(target)))
        parts += [p.read_text(encoding="utf-8") for p in folder.rglob("*") if p.is_file()]
    traces = traces_of(client, experiment)
    assert traces, "the MLflow trace was written"
    parts += [trace.to_json() for trace in traces]
    return "\n".join(parts)


def test_planted_pii_reaches_no_sink(
    mlflow_store: str, experiment_name: str, mlflow_client: MlflowClient,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fresh_process_metrics(monkeypatch)
    out = tmp_path / "facts.jsonl"
    spans = InMemorySpanExporter()
    config = ObservabilityConfig.model_validate({
        "pipeline": {"redact_pii": True, "tags": {"owner": EMAIL},
                     "tag_metadata_keys": ["customer"]},
        "mlflow": {"enabled": True, "tracking_uri": mlflow_store,
                   "experiment_name": experiment_name},
        "jsonl": {"enabled": True, "path": str(out), "include_artifacts": True},
        "prometheus": {"enabled": True, "attribution_labels": ["team", "user_id"]},
    })
    otel = OTelSink(OTelConfig(enabled=True, capture_content=True), exporter=spans)
    handler = MLflowCallbackHandler(config, sinks=[otel], params={"who": CARD})
    metadata = {
        "workflow_name": f"wf {EMAIL}", "workflow_version": f"v {CARD}",
        "user_id": EMAIL, "team": KEY, "thread_id": CARD, "session_id": EMAIL,
        "cost_center": CARD, "customer": EMAIL,
        "ca_params": {"p": PLANTED, f"key {EMAIL}": 1},
        "ca_tags": {"t": PLANTED, f"tag {CARD}": "x"},
        "ca_metrics": {f"m {EMAIL}": 1.0},
    }
    app = graph()
    result = app.invoke({"text": PLANTED}, config={"callbacks": [handler],
                                                   "metadata": metadata})
    assert EMAIL in result["text"]  # the app's answer is untouched
    with pytest.raises(ValueError, match="lookup failed"):
        app.invoke({"text": PLANTED, "fail": True},
                   config={"callbacks": [handler], "metadata": metadata})
    assert handler.flush(60)
    assert handler.stats().internal_errors == 0
    handler.close()

    metrics = current_metrics()
    assert metrics is not None
    outputs = {
        "mlflow": _mlflow_text(mlflow_client, experiment_name, tmp_path),
        "otel": "\n".join(span.to_json() for span in spans.get_finished_spans()),
        "prometheus": generate_latest(metrics.registry).decode(),
        "jsonl": out.read_text(encoding="utf-8"),
    }
    for sink, text in outputs.items():
        assert "<EMAIL>" in text or sink == "prometheus", sink  # something was written
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} reached the {sink} sink"
    assert "lookup" in outputs["otel"] and "invoke_workflow" in outputs["otel"]
    assert 'user_id="<EMAIL>"' in outputs["prometheus"]
