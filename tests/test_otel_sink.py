"""OTelSink against real OTLP receivers (gRPC and HTTP/protobuf): tree, times, attributes."""

from __future__ import annotations

import re
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from configurable_agents.config.otel_config import OTelConfig
from configurable_agents.config.schema import ObservabilityConfig
from configurable_agents.observability.facts.model import WorkflowStart
from configurable_agents.observability.sinks.otel import OTelSink
from configurable_agents.observability.sinks.otel.sink import http_traces_url, service_resource
from tests.otel_facts import MS, T0, facts_for, two_node_record
from tests.otlp_receivers import GrpcReceiver, HttpReceiver, ReceivedSpan
from tests.servers import free_port


def _by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.name: s for s in spans}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_spans_mirror_the_workflow_tree_with_real_times(protocol: str) -> None:
    receiver = GrpcReceiver() if protocol == "grpc" else HttpReceiver()
    with receiver:
        sink = OTelSink(OTelConfig(enabled=True, endpoint=receiver.endpoint, protocol=protocol,
                                   headers={"x-team": "blue"}, service_name="svc-a",
                                   resource_attributes={"deployment.environment": "test"}))
        facts = facts_for(two_node_record())
        sink.export(facts)
        assert sink.close(10)
    spans = _by_name(receiver.received.snapshot())
    assert set(spans) == {
        "invoke_workflow planner", "invoke_agent plan", "invoke_agent act",
        "invoke_agent inner", "chat gemini-2.5-flash", "execute_tool search",
    } or len(receiver.received.snapshot()) == 7
    received = receiver.received.snapshot()
    assert len(received) == 7
    root = spans["invoke_workflow planner"]
    assert root.parent_span_id == ""
    assert {s.trace_id for s in received} == {root.trace_id}
    assert (root.start_ns, root.end_ns) == (T0, T0 + 100 * MS)
    assert root.resource["service.name"] == "svc-a"
    assert root.resource["deployment.environment"] == "test"
    assert receiver.received.headers["x-team"] == "blue"

    plan, act, inner = (spans[f"invoke_agent {n}"] for n in ("plan", "act", "inner"))
    assert plan.parent_span_id == act.parent_span_id == root.span_id
    assert inner.parent_span_id == act.span_id
    assert (inner.start_ns, inner.end_ns) == (T0 + 32 * MS, T0 + 80 * MS)
    tool = spans["execute_tool search"]
    assert tool.parent_span_id == inner.span_id
    assert tool.attributes["gen_ai.tool.name"] == "search"
    chats = [s for s in received if s.name == "chat gemini-2.5-flash"]
    by_parent = {s.parent_span_id: s for s in chats}
    first, second = by_parent[plan.span_id], by_parent[inner.span_id]
    assert first.kind == trace.SpanKind.CLIENT.value + 1  # OTLP enum is the API's + 1

    a = first.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "gcp.gen_ai"
    assert a["gen_ai.request.model"] == "gemini-2.5-flash"
    assert a["gen_ai.response.model"] == "gemini-2.5-flash-001"
    assert a["gen_ai.usage.input_tokens"] == 100
    assert a["gen_ai.usage.output_tokens"] == 40
    assert a["gen_ai.usage.cache_read.input_tokens"] == 30
    assert a["gen_ai.usage.reasoning.output_tokens"] == 10
    assert a["gen_ai.response.finish_reasons"] == ["STOP"]
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.conversation.id"] == "thread-7"
    assert a["user.id"] == "u1"  # the invocation's user_id metadata
    assert a["configurable_agents.cost_usd"] > 0
    assert "gen_ai.input.messages" not in a  # content is opt-in

    # The same numbers as the MLflow runs: ADR names beside the conventions.
    r = root.attributes
    assert r["gen_ai.operation.name"] == "invoke_workflow"
    assert r["gen_ai.workflow.name"] == "planner"
    assert r["configurable_agents.total_input_tokens"] == facts.totals.usage.input == 300
    assert r["configurable_agents.total_output_tokens"] == 100
    assert r["configurable_agents.total_cost_usd"] == pytest.approx(
        a["configurable_agents.cost_usd"] + second.attributes["configurable_agents.cost_usd"]
    )
    assert r["configurable_agents.user_id"] == "u1"
    assert r["configurable_agents.langchain_run_id"] == facts.langchain_run_id
    assert act.attributes["gen_ai.agent.name"] == "act"
    assert act.attributes["configurable_agents.input_tokens"] == 200
    assert sink.span_stats() == {"emitted": 7, "delivered": 7, "failed": 0, "lost": 0}
    assert sink.counters.snapshot().exported == 1


def test_failed_node_sets_error_type_and_status_with_redacted_message() -> None:
    record = two_node_record()
    node = record.nodes[1]
    node.status, node.error = "FAILED", ValueError("bad input from a@b.com")
    record.status, record.error = "FAILED", node.error
    with HttpReceiver() as receiver:
        sink = OTelSink(OTelConfig(enabled=True, endpoint=receiver.endpoint, capture_content=True))
        sink.export(facts_for(record, redact=lambda s: s.replace("a@b.com", "[EMAIL]")))
        sink.close(10)
    spans = _by_name(receiver.received.snapshot())
    act = spans["invoke_agent act"]
    assert act.attributes["error.type"] == "ValueError"
    assert act.status_code == 2  # STATUS_CODE_ERROR
    assert "[EMAIL]" in act.status_message and "a@b.com" not in act.status_message
    assert spans["invoke_workflow planner"].attributes["error.type"] == "ValueError"
    # capture_content: conventions' message JSON, redacted.
    chats = [s for s in receiver.received.snapshot() if s.name.startswith("chat")]
    prompts = " ".join(s.attributes["gen_ai.input.messages"] for s in chats)
    assert '"role": "user"' in prompts and "[EMAIL]" in prompts and "a@b.com" not in prompts
    assert all('"finish_reason": "STOP"' in s.attributes["gen_ai.output.messages"] for s in chats)
    tool = spans["execute_tool search"]
    assert tool.attributes["gen_ai.tool.call.arguments"] == '{"query": "x"}'
    assert tool.attributes["gen_ai.tool.call.result"] == "found"


def test_invocation_span_joins_the_app_span_captured_at_start() -> None:
    app_provider = TracerProvider()  # the app's own provider, never set globally here
    app_tracer = app_provider.get_tracer("app")
    record = two_node_record()
    with HttpReceiver() as receiver:
        sink = OTelSink(OTelConfig(enabled=True, endpoint=receiver.endpoint))
        with app_tracer.start_as_current_span("GET /ask") as app_span:
            sink.on_start(WorkflowStart(record.run_id, record.start_ns, record.sink_state,
                                        lambda: facts_for(record)))
        assert not isinstance(trace.get_current_span(), type(app_span))
        sink.export(facts_for(record))
        sink.close(10)
    root = _by_name(receiver.received.snapshot())["invoke_workflow planner"]
    context = app_span.get_span_context()
    assert root.trace_id == format(context.trace_id, "032x")
    assert root.parent_span_id == format(context.span_id, "016x")


def test_unreachable_collector_counts_the_loss_and_never_raises() -> None:
    port = free_port()  # nothing listens here
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    sink = OTelSink(OTelConfig(enabled=True, endpoint=f"http://127.0.0.1:{port}", timeout_s=1))
    sink.export(facts_for(two_node_record()))
    assert sink.close(15) is False or sink.span_stats()["failed"] == 7
    stats = sink.span_stats()
    assert stats["emitted"] == 7 and stats["delivered"] == 0 and stats["lost"] == 7
    assert sink.up is False
    assert sink.close(1) is False  # idempotent, and still truthful: spans were lost


def test_config_validation_and_standard_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="endpoint must be an http"):
        OTelConfig(endpoint="localhost:4318")
    with pytest.raises(ValidationError, match="unknown key 'endpont'"):
        OTelConfig.model_validate({"endpont": "http://x:1"})
    with pytest.raises(ValidationError, match="header name"):
        OTelConfig(headers={"Bad Header": "1"})
    with pytest.raises(ValidationError):
        OTelConfig(protocol="http/json")  # type: ignore[arg-type]
    assert ObservabilityConfig.model_validate({"otel": {"enabled": True}}).otel.enabled
    assert http_traces_url("http://h:4318") == "http://h:4318/v1/traces"
    assert http_traces_url("http://h:5000/v1/traces") == "http://h:5000/v1/traces"

    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=env,region=eu")
    resource = service_resource(OTelConfig(resource_attributes={"team": "config"}))
    assert resource.attributes["service.name"] == "from-env"
    assert (resource.attributes["team"], resource.attributes["region"]) == ("config", "eu")
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "")
    assert service_resource(OTelConfig()).attributes["service.name"] == "configurable-agents"


def test_env_endpoint_and_protocol_reach_the_sdk_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    with GrpcReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20t0k")
        sink = OTelSink(OTelConfig(enabled=True))
        sink.export(facts_for(two_node_record()))
        sink.close(10)
    assert len(receiver.received.snapshot()) == 7
    assert receiver.received.headers["authorization"] == "Bearer t0k"
    assert re.fullmatch(r"[0-9a-f]{32}", receiver.received.snapshot()[0].trace_id)


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_text, thread_id=_text, metadata=st.dictionaries(_text, _text, max_size=4))
def test_untrusted_metadata_and_names_are_plain_attribute_data(
    name: str, thread_id: str, metadata: dict[str, str]
) -> None:
    record = two_node_record(thread_id=thread_id)
    record.name = name
    record.metadata.update(metadata)
    with HttpReceiver() as receiver:
        sink = OTelSink(OTelConfig(enabled=True, endpoint=receiver.endpoint))
        sink.export(facts_for(record))
        assert sink.close(10)
    spans = receiver.received.snapshot()
    assert len(spans) == 7
    (root,) = [s for s in spans if s.parent_span_id == ""]
    assert root.name == f"invoke_workflow {name}"
    assert root.attributes["gen_ai.workflow.name"] == name


def test_no_queue_of_ours_in_front_of_the_sdks_span_queue(tmp_path) -> None:
    """Pipeline queue, then the SDK's BatchSpanProcessor queue: the OTel sink runs no worker
    thread (and queue) of its own in between."""
    import threading

    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from configurable_agents.config.otel_config import OTelConfig
    from configurable_agents.observability import MLflowCallbackHandler
    from configurable_agents.observability.sinks.otel.sink import OTelSink

    exporter = InMemorySpanExporter()
    handler = MLflowCallbackHandler({"enabled": False},
                                    sinks=[OTelSink(OTelConfig(enabled=True), exporter=exporter)])
    from tests.fakes import repeating
    from tests.test_handler_shapes import article_writer

    article_writer(repeating("t", 10, 2)).invoke({"topic": "x"}, config={"callbacks": [handler]})
    assert handler.flush(10)
    assert exporter.get_finished_spans()  # the workflow's spans were delivered
    assert not [t for t in threading.enumerate() if t.name.startswith("configurable-agents-otel")]
    handler.close(10)
