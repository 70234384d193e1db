"""Real graphs -> handler -> OTelSink -> real OTLP receiver: context, concurrency, streams."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
import requests
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from opentelemetry.sdk.trace import TracerProvider

from configurable_agents.config.otel_config import OTelConfig
from configurable_agents.observability.sinks.otel import OTelSink
from tests.fakes import repeating
from tests.otel_pipeline import otel_handler
from tests.otlp_receivers import HttpReceiver, ReceivedSpan
from tests.servers import free_port


class State(TypedDict):
    question: str
    answer: str


def _draft(state: State, config: RunnableConfig) -> dict[str, Any]:
    model = config["configurable"]["model"]
    return {"answer": str(model.invoke([HumanMessage(state["question"])]).content)}


def _review(state: State, config: RunnableConfig) -> dict[str, Any]:
    model = config["configurable"]["model"]
    if config["configurable"].get("stream"):
        text = "".join(str(c.content) for c in model.stream([HumanMessage(state["answer"])]))
    else:
        text = str(model.invoke([HumanMessage(state["answer"])]).content)
    return {"answer": text}


def _graph() -> Any:
    builder = StateGraph(State)
    builder.add_node("draft", _draft)
    builder.add_node("review", _review)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", END)
    return builder.compile(name="reviewer")


GRAPH = _graph()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as running:
        yield running


def _config(handler: Any, tokens: int, **extra: Any) -> RunnableConfig:
    model = repeating("fine answer", input_tokens=tokens, output_tokens=tokens // 2)
    return {"callbacks": [handler], "configurable": {"model": model, **extra}}


def _traces(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    out: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        out[span.trace_id].append(span)
    return out


def _check_tree(spans: list[ReceivedSpan], app_span_id: str) -> int:
    """Every span under its right parent; returns the trace's summed input tokens."""
    by_id = {s.span_id: s for s in spans}
    (root,) = [s for s in spans if s.name == "invoke_workflow reviewer"]
    assert root.parent_span_id == app_span_id
    nodes = [s for s in spans if s.name.startswith("invoke_agent")]
    assert sorted(n.attributes["gen_ai.agent.name"] for n in nodes) == ["draft", "review"]
    assert all(n.parent_span_id == root.span_id for n in nodes)
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert len(chats) == 2
    for chat in chats:
        parent = by_id[chat.parent_span_id]
        assert parent in nodes
        assert parent.start_ns <= chat.start_ns <= chat.end_ns <= parent.end_ns
    assert root.start_ns <= min(n.start_ns for n in nodes)
    total = sum(c.attributes["gen_ai.usage.input_tokens"] for c in chats)
    assert total == root.attributes["configurable_agents.total_input_tokens"]
    return total


def test_threads_and_gather_keep_parents_and_token_sums(receiver: HttpReceiver) -> None:
    sink = OTelSink(OTelConfig(enabled=True, endpoint=receiver.endpoint))
    handler = otel_handler(sink)
    app_tracer = TracerProvider().get_tracer("app")
    expected: dict[str, tuple[str, int]] = {}  # app trace id -> (app span id, input tokens)
    lock = threading.Lock()

    def call(i: int) -> None:
        with app_tracer.start_as_current_span(f"job {i}") as span:
            GRAPH.invoke({"question": f"q{i}"}, _config(handler, 100 + i))
            context = span.get_span_context()
        with lock:
            expected[format(context.trace_id, "032x")] = (format(context.span_id, "016x"),
                                                         2 * (100 + i))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def acall(i: int) -> None:
        with app_tracer.start_as_current_span(f"task {i}") as span:
            await asyncio.sleep(0)
            await GRAPH.ainvoke({"question": f"a{i}"}, _config(handler, 1000 + i))
            context = span.get_span_context()
        expected[format(context.trace_id, "032x")] = (format(context.span_id, "016x"),
                                                     2 * (1000 + i))

    async def gather() -> None:
        await asyncio.gather(*(acall(i) for i in range(100)))

    asyncio.run(gather())
    assert handler.flush(30)
    traces = _traces(receiver.received.snapshot())
    assert len(traces) == len(expected) == 132
    for trace_id, spans in traces.items():
        app_span_id, tokens = expected[trace_id]
        assert len(spans) == 5
        assert _check_tree(spans, app_span_id) == tokens
    assert sink.span_stats()["lost"] == 0


def test_streamed_usage_in_last_chunk_lands_on_the_model_span(receiver: HttpReceiver) -> None:
    sink = OTelSink(OTelConfig(enabled=True, endpoint=receiver.endpoint))
    handler = otel_handler(sink)
    GRAPH.invoke({"question": "q"}, _config(handler, 321, stream=True, thread_id="t-1"))
    assert handler.flush(30)
    spans = receiver.received.snapshot()
    review = next(s for s in spans if s.name == "invoke_agent review")
    (streamed,) = [s for s in spans if s.name.startswith("chat") and
                   s.parent_span_id == review.span_id]
    assert streamed.attributes["gen_ai.usage.input_tokens"] == 321
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 160
    assert streamed.attributes["gen_ai.response.time_to_first_chunk"] >= 0
    assert "configurable_agents.tokens_estimated" not in streamed.attributes
    # LangGraph's thread_id is the conversation id on every span of the invocation.
    assert {s.attributes.get("gen_ai.conversation.id") for s in spans} == {"t-1"}


def test_fastapi_request_trace_reaches_every_model_call(receiver: HttpReceiver) -> None:
    import uvicorn
    from fastapi import FastAPI
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    app_provider = TracerProvider()  # the app's own tracing, exporting to the same receiver
    app_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.endpoint + "/v1/traces"))
    )
    sink = OTelSink(OTelConfig(enabled=True, endpoint=receiver.endpoint))
    handler = otel_handler(sink)
    app = FastAPI()

    @app.get("/ask")
    async def ask(q: str) -> dict[str, str]:
        result = await GRAPH.ainvoke({"question": q}, _config(handler, 55))
        return {"answer": result["answer"]}

    @app.get("/ask-sync")
    def ask_sync(q: str) -> dict[str, str]:  # runs in Starlette's thread pool
        return {"answer": GRAPH.invoke({"question": q}, _config(handler, 66))["answer"]}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=app_provider)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        for path in ("/ask", "/ask-sync"):
            response = requests.get(f"http://127.0.0.1:{port}{path}", params={"q": "hi"},
                                    timeout=30)
            assert response.json() == {"answer": "fine answer"}
    finally:
        server.should_exit = True
        thread.join(30)
    assert handler.flush(30)
    assert app_provider.force_flush(10_000)
    traces = _traces(receiver.received.snapshot())
    assert len(traces) == 2
    for spans in traces.values():
        (server_span,) = [s for s in spans if s.kind == 2]  # SPAN_KIND_SERVER
        assert server_span.name.startswith("GET /ask")
        assert server_span.parent_span_id == ""
        chats = [s for s in spans if s.name.startswith("chat ")]
        assert len(chats) == 2  # one trace id from the request down to each model call
        root = next(s for s in spans if s.name == "invoke_workflow reviewer")
        assert root.trace_id == server_span.trace_id
        assert root.parent_span_id in {s.span_id for s in spans if s.resource.get(
            "service.name") != "configurable-agents"}
    app_provider.shutdown()


def test_otel_from_config_alone_with_mlflow_off(receiver: HttpReceiver) -> None:
    """The user path: `observability.otel.enabled: true` in a config block, MLflow off."""
    from configurable_agents.observability import MLflowCallbackHandler

    handler = MLflowCallbackHandler({
        "observability": {
            "mlflow": {"enabled": False},
            "otel": {"enabled": True, "endpoint": receiver.endpoint,
                     "service_name": "reviewer-service"},
        }
    })
    assert [s.name for s in handler.sinks] == ["otel"]
    result = GRAPH.invoke({"question": "q"}, _config(handler, 80))
    assert result["answer"] == "fine answer"
    assert handler.flush(30)
    spans = receiver.received.snapshot()
    [trace] = _traces(spans).values()
    root = next(s for s in trace if s.name == "invoke_workflow reviewer")
    assert root.parent_span_id in ("", None)  # no app span: the invocation is the root
    assert _check_tree(trace, root.parent_span_id) == 160
    assert handler.stats().sinks["otel"].exported == 1
    handler.close()
