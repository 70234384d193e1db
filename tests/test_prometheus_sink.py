"""The Prometheus sink against facts from real records: names, labels, sums, bounds, health.

Facts come from WorkflowRecord trees with real langchain-core ``LLMResult`` /
``AIMessage`` usage, priced by the real PriceBook through the real Assembler; each
test reads a private registry (``get_sample_value``), so tests never share counters.
"""

from __future__ import annotations

import time
import urllib.request
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from configurable_agents.config.prometheus_config import PrometheusConfig
from configurable_agents.config.schema import ObservabilityConfig
from configurable_agents.observability.capture.records import (
    LLMCallRecord,
    NodeRecord,
    WorkflowRecord,
)
from configurable_agents.observability.facts.build import FactOptions, build_facts
from configurable_agents.observability.facts.cost_estimator import PriceBook
from configurable_agents.observability.facts.model import WorkflowFacts
from configurable_agents.observability.sinks.base import SinkStats
from configurable_agents.observability.sinks.prometheus import (
    PrometheusMetrics,
    PrometheusSink,
)
from configurable_agents.testing import reply, usage

MS = 1_000_000


def _call(start_ns: int, model: str, input_tokens: int, output_tokens: int,
          error: Exception | None = None, **details: object) -> LLMCallRecord:
    message = reply("answer", input_tokens, output_tokens, model)
    message.usage_metadata = usage(input_tokens, output_tokens, **details)  # type: ignore[assignment]
    return LLMCallRecord(
        run_id=uuid.uuid4(),
        start_ns=start_ns,
        end_ns=start_ns + 250 * MS,
        messages=[[HumanMessage("question")]],
        metadata={"ls_model_name": model, "ls_provider": "google"},
        invocation_params={"model": model},
        response=LLMResult(generations=[[ChatGeneration(message=message)]]),
        error=error,
    )


def make_facts(
    name: str = "qa",
    *,
    version: str | None = "1",
    status: str = "FINISHED",
    metadata: dict[str, object] | None = None,
    model: str = "gemini-2.5-flash",
    retries: int = 0,
) -> WorkflowFacts:
    """A two-node workflow (plan -> answer) and one call outside any node, as captured."""
    t0 = time.time_ns()
    plan_node = NodeRecord("plan", uuid.uuid4(), t0, end_ns=t0 + 400 * MS, status="FINISHED",
                           retries=retries)
    plan_node.llm_calls.append(_call(t0, model, 100, 50))
    answer = NodeRecord("answer", uuid.uuid4(), t0 + 400 * MS, end_ns=t0 + 900 * MS,
                        status="FAILED" if status == "FAILED" else "FINISHED")
    answer.llm_calls.append(
        _call(t0 + 400 * MS, model, 300, 80,
              input_token_details={"cache_read": 200},
              output_token_details={"reasoning": 30})
    )
    direct = NodeRecord("__direct__", uuid.uuid4(), t0)
    direct.llm_calls.append(_call(t0 + 900 * MS, model, 10, 5))
    record = WorkflowRecord(
        run_id=uuid.uuid4(), start_ns=t0, name=name, version=version, kind="graph",
        metadata=dict(metadata or {}), tags=[], end_ns=t0 + 1500 * MS,
        status="FAILED" if status == "FAILED" else "FINISHED",
        interrupted=status == "INTERRUPTED",
        error=RuntimeError("boom") if status == "FAILED" else None,
        nodes=[plan_node, answer], direct=direct,
    )
    return build_facts(record, FactOptions(), PriceBook())


@pytest.fixture
def metrics() -> PrometheusMetrics:
    return PrometheusMetrics(CollectorRegistry(), attribution_labels=("team",))


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    assert found is not None, f"no sample {name}{labels}"
    return found


def test_tokens_cost_runs_and_durations_match_the_facts(metrics: PrometheusMetrics) -> None:
    sink = PrometheusSink(PrometheusConfig(enabled=True, attribution_labels=["team"]), metrics)
    facts = make_facts(metadata={"team": "search", "user_id": "u-123"})
    sink.export(facts)
    sink.export(make_facts(status="FAILED", metadata={"team": "search"}))

    model = {"gen_ai_request_model": "gemini-2.5-flash", "gen_ai_provider_name": "google",
             "gen_ai_operation_name": "chat", "workflow": "qa"}
    tokens = "gen_ai_client_token_usage_sum"
    assert value(metrics, tokens, **model, gen_ai_token_type="input", node="plan") == 200
    assert value(metrics, tokens, **model, gen_ai_token_type="input", node="answer") == 600
    assert value(metrics, tokens, **model, gen_ai_token_type="cache_read", node="answer") == 400
    assert value(metrics, tokens, **model, gen_ai_token_type="reasoning", node="answer") == 60
    assert value(metrics, tokens, **model, gen_ai_token_type="output", node="") == 10
    assert value(metrics, "gen_ai_client_token_usage_count", **model, gen_ai_token_type="input",
                 node="plan") == 2
    # Every call's input and output tokens add up to the parent run's ADR totals.
    total_in = sum(
        value(metrics, tokens, **model, gen_ai_token_type="input", node=node)
        for node in ("plan", "answer", "")
    )
    assert total_in == 2 * facts.totals.usage.input == 820

    cost = sum(
        value(metrics, "configurable_agents_cost_usd_total", workflow="qa", workflow_version="1",
              node=node, gen_ai_request_model="gemini-2.5-flash", team="search")
        for node in ("plan", "answer", "")
    )
    assert facts.totals.cost_usd > 0
    assert cost == pytest.approx(2 * facts.totals.cost_usd, rel=1e-9)

    runs = "configurable_agents_workflow_runs_total"
    assert value(metrics, runs, workflow="qa", workflow_version="1", status="FINISHED",
                 team="search") == 1
    assert value(metrics, runs, workflow="qa", workflow_version="1", status="FAILED",
                 team="search") == 1
    assert value(metrics, "configurable_agents_workflow_duration_seconds_sum", workflow="qa",
                 workflow_version="1") == pytest.approx(3.0)
    assert value(metrics, "gen_ai_client_operation_duration_seconds_sum", **model,
                 node="plan", error_type="") == pytest.approx(0.5)
    # user_id is never a label: no series carries it.
    text = "\n".join(str(m) for m in metrics.registry.collect())
    assert "u-123" not in text


def test_statuses_retries_and_unpriced_calls(metrics: PrometheusMetrics) -> None:
    sink = PrometheusSink(PrometheusConfig(enabled=True), metrics)
    sink.export(make_facts("pause", status="INTERRUPTED", retries=2))
    sink.export(make_facts("custom", model="our-private-finetune-v7"))

    assert value(metrics, "configurable_agents_workflow_runs_total", workflow="pause",
                 workflow_version="1", status="INTERRUPTED", team="") == 1
    assert value(metrics, "configurable_agents_retries_total", workflow="pause",
                 workflow_version="1") == 2
    assert value(metrics, "configurable_agents_unpriced_calls_total", workflow="custom",
                 gen_ai_request_model="our-private-finetune-v7",
                 gen_ai_provider_name="google") == 3
    assert metrics.registry.get_sample_value(
        "configurable_agents_unpriced_calls_total",
        {"workflow": "pause", "gen_ai_request_model": "gemini-2.5-flash",
         "gen_ai_provider_name": "google"},
    ) is None


def test_label_values_past_the_cap_fold_into_other_and_are_counted(
    metrics: PrometheusMetrics,
) -> None:
    sink = PrometheusSink(
        PrometheusConfig(enabled=True, attribution_labels=["team"], max_label_values=3), metrics
    )
    for i in range(5):
        sink.export(make_facts(f"wf-{i}", metadata={"team": f"team-{i}"}))

    runs = "configurable_agents_workflow_runs_total"
    kept = [value(metrics, runs, workflow=f"wf-{i}", workflow_version="1", status="FINISHED",
                  team=f"team-{i}") for i in range(3)]
    assert kept == [1, 1, 1]
    assert value(metrics, runs, workflow="other", workflow_version="1", status="FINISHED",
                 team="other") == 2
    assert value(metrics, "configurable_agents_label_values_folded_total", label="workflow") == 2
    assert value(metrics, "configurable_agents_label_values_folded_total", label="team") == 2
    workflows = {
        s.labels["workflow"]
        for family in metrics.registry.collect()
        for s in family.samples
        if "workflow" in s.labels
    }
    assert workflows == {"wf-0", "wf-1", "wf-2", "other"}


def test_label_values_are_data_never_markup(metrics: PrometheusMetrics) -> None:
    """Quotes, newlines and braces in a workflow name are escaped in the exposition."""
    from prometheus_client.exposition import generate_latest

    sink = PrometheusSink(PrometheusConfig(enabled=True, attribution_labels=["team"]), metrics)
    nasty = 'x"} 1\nevil_metric{a="b'
    sink.export(make_facts(nasty, metadata={"team": "t\\\n"}))
    text = generate_latest(metrics.registry).decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "evil_metric" not in names
    assert value(metrics, "configurable_agents_workflow_runs_total", workflow=nasty,
                 workflow_version="1", status="FINISHED", team="t\\\n") == 1


def test_exporter_health_is_read_at_scrape_time_per_sink(metrics: PrometheusMetrics) -> None:
    sink = PrometheusSink(PrometheusConfig(enabled=True), metrics)
    stats = {
        "mlflow": SinkStats(exported=3, spooled=2, failed=1, queue_depth=4, up=False),
        "prometheus": SinkStats(exported=5),
    }
    reads: list[int] = []

    def health() -> dict[str, SinkStats]:
        reads.append(1)
        return stats

    sink.bind_health(health)
    assert reads == []  # binding reads nothing; only a scrape does
    families = {f.name: f for f in metrics.health.collect()}
    assert len(reads) == 1

    def sample(name: str, sink_name: str) -> float:
        return next(s.value for s in families[name].samples if s.labels["sink"] == sink_name)

    assert sample("configurable_agents_exporter_queue_depth", "mlflow") == 4
    assert sample("configurable_agents_exporter_up", "mlflow") == 0
    assert sample("configurable_agents_exporter_up", "prometheus") == 1
    assert sample("configurable_agents_exporter_spooled_workflows", "mlflow") == 2
    assert sample("configurable_agents_exporter_failed_workflows", "mlflow") == 1
    assert sample("configurable_agents_exporter_exported_workflows", "prometheus") == 5

    stats["mlflow"] = SinkStats(exported=9, queue_depth=0, up=True)
    families = {f.name: f for f in metrics.health.collect()}
    assert sample("configurable_agents_exporter_queue_depth", "mlflow") == 0
    assert sample("configurable_agents_exporter_exported_workflows", "mlflow") == 9


def test_a_failing_health_view_never_breaks_a_scrape(metrics: PrometheusMetrics) -> None:
    sink = PrometheusSink(PrometheusConfig(enabled=True), metrics)

    def broken() -> dict[str, SinkStats]:
        raise RuntimeError("pipeline gone")

    sink.bind_health(broken)
    assert [s for f in metrics.health.collect() for s in f.samples] == []


def test_standalone_endpoint_serves_the_metrics_and_stops_on_close(
    metrics: PrometheusMetrics,
) -> None:
    sink = PrometheusSink(PrometheusConfig(enabled=True, port=0), metrics)
    try:
        assert sink.port
        sink.export(make_facts("served"))
        body = urllib.request.urlopen(f"http://127.0.0.1:{sink.port}/metrics", timeout=5).read()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }
        run = (("status", "FINISHED"), ("team", ""), ("workflow", "served"),
               ("workflow_version", "1"))
        assert samples[("configurable_agents_workflow_runs_total", run)] == 1
        exported = (("sink", "prometheus"),)
        assert samples[("configurable_agents_exporter_exported_workflows_total", exported)] == 1
    finally:
        port = sink.port
        sink.close(1.0)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_a_busy_port_is_logged_and_loses_nothing(
    metrics: PrometheusMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    first = PrometheusSink(PrometheusConfig(enabled=True, port=0), metrics)
    try:
        second = PrometheusSink(PrometheusConfig(enabled=True, port=first.port), metrics)
        assert second.port is None
        assert "not serving /metrics" in caplog.text
        second.export(make_facts("still-counted"))
        assert value(metrics, "configurable_agents_workflow_runs_total", workflow="still-counted",
                     workflow_version="1", status="FINISHED", team="") == 1
    finally:
        first.close(1.0)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"enabled": True, "prot": 9464}, "did you mean port"),
        ({"port": 70000}, "less than or equal to 65535"),
        ({"attribution_labels": ["user-id"]}, "not a Prometheus label name"),
        ({"attribution_labels": ["workflow"]}, "clashes with a label"),
        ({"attribution_labels": ["__name"]}, "not a Prometheus label name"),
        ({"attribution_labels": ["team", "team"]}, "lists a name twice"),
        ({"addr": "http://0.0.0.0"}, "not a host address"),
        ({"max_label_values": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_config_is_one_clear_error(block: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ObservabilityConfig.model_validate({"prometheus": block})


def test_config_defaults_serve_nothing_and_label_nothing() -> None:
    config = ObservabilityConfig.model_validate({"prometheus": {"enabled": True}}).prometheus
    assert config is not None
    assert (config.port, config.addr, config.attribution_labels) == (None, "127.0.0.1", [])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    workflow=st.text(st.characters(exclude_categories=()), max_size=200),
    team=st.text(max_size=200),
)
def test_any_metadata_text_is_one_escaped_label_value(workflow: str, team: str) -> None:
    """Untrusted metadata and names never add a series name or break the exposition."""
    from prometheus_client.exposition import generate_latest

    metrics = PrometheusMetrics(CollectorRegistry(), attribution_labels=("team",))
    sink = PrometheusSink(PrometheusConfig(enabled=True, attribution_labels=["team"]), metrics)
    sink.export(make_facts(workflow, metadata={"team": team}))
    families = list(text_string_to_metric_families(generate_latest(metrics.registry).decode()))
    expected = {f.name for f in metrics.registry.collect()}
    # The text format shows prometheus-client's ``_created`` samples as families of their own.
    assert {f.name.removesuffix("_created") for f in families} == expected
    runs = [s for f in families for s in f.samples
            if s.name == "configurable_agents_workflow_runs_total" and s.value == 1]
    assert len(runs) == 1
    assert len(runs[0].labels["workflow"]) <= 128
    safe = workflow[:128].encode("utf-8", "backslashreplace").decode("utf-8")
    assert runs[0].labels["workflow"] == safe


def test_metrics_mount_in_an_asgi_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented FastAPI/Starlette mount serves this process's families and health."""
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from configurable_agents.observability.sinks.prometheus import metrics_asgi_app
    from tests.prometheus_graphs import (
        fresh_process_metrics,
        invoke,
        prometheus_handler,
        qa_graph,
    )

    fresh_process_metrics(monkeypatch)
    handler = prometheus_handler()
    try:
        invoke(qa_graph(), handler, "mounted-qa")
        assert handler.flush(30)
        app = FastAPI()
        app.mount("/metrics", metrics_asgi_app())
        with TestClient(app) as client:
            response = client.get("/metrics/")
        assert response.status_code == 200
        samples = [s for f in text_string_to_metric_families(response.text) for s in f.samples]
        runs = [s for s in samples if s.name == "configurable_agents_workflow_runs_total"
                and s.labels["workflow"] == "mounted-qa" and s.labels["status"] == "FINISHED"]
        assert [s.value for s in runs] == [1]
        assert any(s.name == "configurable_agents_exporter_queue_depth"
                   and s.labels["sink"] == "prometheus" for s in samples)
    finally:
        handler.close(10)
