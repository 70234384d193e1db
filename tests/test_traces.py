"""One MLflow trace per invocation, linked to its parent run (real sqlite store, real LangGraph)."""


import json
from typing import Any, TypedDict

import mlflow
import pytest
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, RetryPolicy, interrupt
from mlflow.entities import Run, Span, Trace
from mlflow.tracking import MlflowClient

from configurable_agents.observability.sinks.mlflow.traces import (
    EXPERIMENT_KIND_TAG,
    GENAI_EXPERIMENT_KIND,
    SKIPPED_FOR_AUTOLOG,
    TRACE_ID_TAG,
    TRACE_SKIPPED_TAG,
    langchain_run_id_of,
)
from tests.fakes import ScriptedToolModel, flaky, repeating
from tests.test_handler_shapes import article_writer, fan_out_app, make_handler, runs_of

# ---- helpers ---------------------------------------------------------------------------------


def experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    return experiment.experiment_id


def traces_of(client: MlflowClient, experiment: str, **kwargs: Any) -> list[Trace]:
    return list(
        client.search_traces(locations=[experiment_id(client, experiment)], max_results=500,
                             **kwargs)
    )


def trace_of_run(client: MlflowClient, experiment: str, run: Run) -> Trace:
    """The run's trace, found both ways: search by run id, and the run's trace-id tag."""
    (trace,) = traces_of(client, experiment, run_id=run.info.run_id)
    assert run.data.tags[TRACE_ID_TAG] == trace.info.trace_id
    assert trace.info.trace_metadata["mlflow.sourceRun"] == run.info.run_id
    return trace


def shape(trace: Trace) -> list[tuple[int, str, str]]:
    """(depth, name, span type) depth first, siblings in start order."""
    spans = trace.data.spans
    kids: dict[str | None, list[Span]] = {}
    for span in spans:
        kids.setdefault(span.parent_id, []).append(span)
    out: list[tuple[int, str, str]] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(kids.get(parent, []), key=lambda s: (s.start_time_ns, s.name)):
            out.append((depth, span.name, span.span_type))
            walk(span.span_id, depth + 1)

    walk(None, 0)
    assert len(out) == len(spans), "every span hangs off the root"
    return out


def spans_named(trace: Trace, name: str) -> list[Span]:
    return sorted(
        (s for s in trace.data.spans if s.name == name), key=lambda s: s.start_time_ns
    )


def root_span(trace: Trace) -> Span:
    (root,) = [s for s in trace.data.spans if s.parent_id is None]
    return root


# ---- shapes ----------------------------------------------------------------------------------


def test_sequential_graph_trace_mirrors_the_run(
    mlflow_store, experiment_name, mlflow_client, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)  # for the fluent search below
    handler = make_handler(
        mlflow_store, experiment_name, workflow_name="article_writer", workflow_version="1.0.0"
    )
    app = article_writer(repeating("text", 1000, 500))
    app.invoke(
        {"topic": "AI Safety"},
        config={
            "callbacks": [handler],
            "metadata": {"user_id": "alice", "thread_id": "conv-1", "team": "ds"},
        },
    )
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    trace = trace_of_run(mlflow_client, experiment_name, parent)

    assert shape(trace) == [
        (0, "article_writer", "CHAIN"),
        (1, "research", "CHAIN"),
        (2, "UsageChatModel", "CHAT_MODEL"),
        (1, "write", "CHAIN"),
        (2, "UsageChatModel", "CHAT_MODEL"),
    ]
    info = trace.info
    assert info.state.value == "OK"
    assert str(langchain_run_id_of(trace)) == parent.data.tags["langchain_run_id"]
    # Real times: the trace spans exactly the run.
    assert info.request_time == parent.info.start_time
    assert info.request_time + info.execution_duration == pytest.approx(
        parent.info.end_time, abs=1
    )
    root = root_span(trace)
    assert root.start_time_ns // 1_000_000 == parent.info.start_time
    # Tokens and cost: MLflow's own attribute names, the run's numbers.
    m = parent.data.metrics
    assert json.loads(info.trace_metadata["mlflow.trace.tokenUsage"]) == {
        "input_tokens": m["total_input_tokens"],
        "output_tokens": m["total_output_tokens"],
        "total_tokens": m["total_tokens"],
    }
    assert info.token_usage["input_tokens"] == 2000
    cost = json.loads(info.trace_metadata["mlflow.trace.cost"])
    assert cost["total_cost"] == pytest.approx(m["total_cost_usd"]) == pytest.approx(0.0031)
    for llm in spans_named(trace, "UsageChatModel"):
        assert llm.get_attribute("mlflow.chat.tokenUsage") == {
            "input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500,
        }
        assert llm.get_attribute("mlflow.llm.cost")["total_cost"] == pytest.approx(0.00155)
        assert llm.get_attribute("mlflow.llm.model") == "gemini-2.5-flash"
        assert llm.get_attribute("mlflow.message.format") == "langchain"
    # Session, user, attribution tags: as on the run.
    assert info.trace_metadata["mlflow.trace.session"] == "conv-1"
    assert info.trace_metadata["mlflow.trace.user"] == "alice"
    for key in ("user_id", "thread_id", "team", "workflow_name", "workflow_version"):
        assert info.tags[key] == parent.data.tags[key]
    assert info.tags["mlflow.traceName"] == "article_writer"
    # Inputs and outputs as MLflow's chat view reads them.
    write_llm = spans_named(trace, "UsageChatModel")[1]
    assert write_llm.inputs == {
        "messages": [
            {"role": "system", "content": "You write articles."},
            {"role": "user", "content": "Write about AI Safety using text"},
        ]
    }
    assert write_llm.outputs == {
        "choices": [{"message": {"role": "assistant", "content": "text"}, "finish_reason": None}]
    }
    assert root.inputs == {"topic": "AI Safety"}
    assert root.outputs == {"topic": "AI Safety", "research": "text", "article": "text"}
    # The experiment opens on MLflow's GenAI views.
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == GENAI_EXPERIMENT_KIND
    # The fluent API finds it by run id too (it reads the process-wide tracking URI).
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_store)
    try:
        found = mlflow.search_traces(
            locations=[experiment.experiment_id], run_id=parent.info.run_id, return_type="list"
        )
    finally:
        mlflow.set_tracking_uri(previous_uri)
    assert [t.info.trace_id for t in found] == [trace.info.trace_id]
    handler.close()


def test_fan_out_and_send_spans(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(mlflow_store, experiment_name, workflow_name="fan")
    fan_out_app().invoke({"items": ["x", "y", "z"]}, config={"callbacks": [handler]})
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    trace = trace_of_run(mlflow_client, experiment_name, parent)
    tree = shape(trace)
    assert tree[0] == (0, "fan", "CHAIN")
    nodes = sorted(name for depth, name, _ in tree if depth == 1)
    assert nodes == ["branch_a", "branch_b", "worker", "worker", "worker"]
    # Every node span has exactly its own model call under it.
    assert [t for t in tree if t[0] == 2] == [(2, "UsageChatModel", "CHAT_MODEL")] * 5
    workers = spans_named(trace, "worker")
    assert sorted(w.inputs["item"] for w in workers) == ["x", "y", "z"]
    assert trace.info.token_usage["input_tokens"] == parent.data.metrics["total_input_tokens"] == 50


def test_subgraph_spans_nest_one_level_deeper(mlflow_store, experiment_name, mlflow_client):
    class State(TypedDict, total=False):
        text: str

    model = repeating("sub", 7, 3)
    sub = StateGraph(State)
    sub.add_node("inner_one", lambda s: {"text": model.invoke("one").content})
    sub.add_node("inner_two", lambda s: {"text": s["text"] + model.invoke("two").content})
    sub.add_edge(START, "inner_one")
    sub.add_edge("inner_one", "inner_two")
    sub.add_edge("inner_two", END)
    outer = StateGraph(State)
    outer.add_node("prepare", lambda s: {"text": "p"})
    outer.add_node("summarise", sub.compile())
    outer.add_edge(START, "prepare")
    outer.add_edge("prepare", "summarise")
    outer.add_edge("summarise", END)
    handler = make_handler(mlflow_store, experiment_name, workflow_name="outer")
    outer.compile().invoke({"text": ""}, config={"callbacks": [handler]})
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    trace = trace_of_run(mlflow_client, experiment_name, parent)
    assert shape(trace) == [
        (0, "outer", "CHAIN"),
        (1, "prepare", "CHAIN"),
        (1, "summarise", "CHAIN"),
        (2, "inner_one", "CHAIN"),
        (3, "UsageChatModel", "CHAT_MODEL"),
        (2, "inner_two", "CHAIN"),
        (3, "UsageChatModel", "CHAT_MODEL"),
    ]
    assert trace.info.token_usage["input_tokens"] == 14


def test_react_agent_model_and_tool_spans(mlflow_store, experiment_name, mlflow_client):
    from langgraph.prebuilt import create_react_agent

    @tool
    def search(query: str) -> str:
        """Search the web."""
        return f"results for {query}"

    model = ScriptedToolModel(tool_name="search", calls=2, model_name="gpt-4o-mini")
    agent = create_react_agent(model, [search])
    handler = make_handler(mlflow_store, experiment_name, workflow_name="react")
    agent.invoke({"messages": [("human", "find things")]}, config={"callbacks": [handler]})
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    trace = trace_of_run(mlflow_client, experiment_name, parent)
    assert shape(trace) == [
        (0, "react", "CHAIN"),
        (1, "agent", "CHAIN"),
        (2, "ScriptedToolModel", "CHAT_MODEL"),
        (1, "tools", "CHAIN"),
        (2, "search", "TOOL"),
        (1, "agent", "CHAIN"),
        (2, "ScriptedToolModel", "CHAT_MODEL"),
        (1, "tools", "CHAIN"),
        (2, "search", "TOOL"),
        (1, "agent", "CHAIN"),
        (2, "ScriptedToolModel", "CHAT_MODEL"),
    ]
    first_call, _, last_call = spans_named(trace, "ScriptedToolModel")
    (tool_call,) = first_call.outputs["choices"][0]["message"]["tool_calls"]
    assert tool_call == {
        "id": "call_0", "type": "function",
        "function": {"name": "search", "arguments": '{"query": "q0"}'},
    }
    assert [t["function"]["name"] for t in first_call.get_attribute("mlflow.chat.tools")] == [
        "search"
    ]
    assert [m["role"] for m in last_call.inputs["messages"]] == [
        "user", "assistant", "tool", "assistant", "tool",
    ]
    first_tool = spans_named(trace, "search")[0]
    assert first_tool.inputs == {"query": "q0"}
    assert first_tool.outputs == "results for q0"
    cost = json.loads(trace.info.trace_metadata["mlflow.trace.cost"])
    assert cost["total_cost"] == pytest.approx(parent.data.metrics["total_cost_usd"])
    assert trace.info.token_usage["input_tokens"] == 80 + 81 + 120


# ---- errors, interrupts, retries --------------------------------------------------------------


class TextState(TypedDict, total=False):
    text: str


def one_node(fn: Any, name: str = "work", **kwargs: Any) -> Any:
    graph = StateGraph(TextState)
    graph.add_node(name, fn, **kwargs)
    graph.add_edge(START, name)
    graph.add_edge(name, END)
    return graph


def test_failure_is_error_status_with_exception_event(
    mlflow_store, experiment_name, mlflow_client
):
    def work(state: TextState) -> TextState:
        raise ValueError("the model said no")

    handler = make_handler(mlflow_store, experiment_name, workflow_name="failing")
    with pytest.raises(ValueError):
        one_node(work).compile().invoke({}, config={"callbacks": [handler]})
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    trace = trace_of_run(mlflow_client, experiment_name, parent)
    assert trace.info.state.value == "ERROR"
    root, (node,) = root_span(trace), spans_named(trace, "work")
    for span in (root, node):
        assert span.status.status_code.value == "ERROR"
        assert span.status.description == "ValueError: the model said no"
        (event,) = [e for e in span.events if e.name == "exception"]
        assert event.attributes["exception.type"] == "ValueError"
        assert event.attributes["exception.message"] == "the model said no"
        assert "raise ValueError" in event.attributes["exception.stacktrace"]
    assert node.outputs is None


def test_graph_interrupt_is_not_an_error(mlflow_store, experiment_name, mlflow_client):
    def ask(state: TextState) -> TextState:
        return {"text": f"approved: {interrupt('approve?')}"}

    app = one_node(ask, name="ask_human").compile(checkpointer=InMemorySaver())
    handler = make_handler(mlflow_store, experiment_name, workflow_name="hitl")
    config = {"callbacks": [handler], "configurable": {"thread_id": "c-9"},
              "metadata": {"thread_id": "c-9"}}
    app.invoke({"text": ""}, config=config)
    app.invoke(Command(resume="yes"), config=config)
    assert handler.flush(60)
    parents, _ = runs_of(mlflow_client, experiment_name)
    by_status = {p.data.tags["status"]: p for p in parents}
    first = trace_of_run(mlflow_client, experiment_name, by_status["INTERRUPTED"])
    assert first.info.state.value == "OK"
    assert all(s.status.status_code.value == "OK" for s in first.data.spans)
    assert root_span(first).get_attribute("interrupted") is True
    assert spans_named(first, "ask_human")[0].get_attribute("interrupted") is True
    assert not any(e.name == "exception" for s in first.data.spans for e in s.events)
    resumed = trace_of_run(mlflow_client, experiment_name, by_status["FINISHED"])
    # Both turns are one session.
    assert {first.info.trace_metadata["mlflow.trace.session"],
            resumed.info.trace_metadata["mlflow.trace.session"]} == {"c-9"}


def test_retries_are_visible(mlflow_store, experiment_name, mlflow_client):
    model = repeating("ok", 10, 5)
    fail_twice = flaky(2)

    def work(state: TextState) -> TextState:
        fail_twice()
        return {"text": model.invoke("go").content}

    policy = RetryPolicy(max_attempts=3, initial_interval=0.001, jitter=False,
                         retry_on=RuntimeError)
    handler = make_handler(mlflow_store, experiment_name)
    one_node(work, retry_policy=policy).compile().invoke({}, config={"callbacks": [handler]})
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    trace = trace_of_run(mlflow_client, experiment_name, parent)
    (node,) = spans_named(trace, "work")
    assert node.get_attribute("retries") == 2
    assert [(e.name, e.attributes) for e in node.events] == [("retried", {"retries": 2})]
    assert root_span(trace).get_attribute("retry_count") == 2
    assert node.status.status_code.value == "OK"


def test_retried_model_call_attempts_are_spans(mlflow_store, experiment_name, mlflow_client):
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    class FailingOnce(GenericFakeChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            if not getattr(type(self), "failed", False):
                type(self).failed = True
                raise RuntimeError("rate limited")
            return super()._generate(*args, **kwargs)

    base = repeating("ok", 10, 5)
    model = FailingOnce(messages=base.messages).with_retry(
        stop_after_attempt=2, wait_exponential_jitter=False, retry_if_exception_type=(RuntimeError,)
    )
    handler = make_handler(mlflow_store, experiment_name, workflow_name="retrying")
    one_node(lambda s: {"text": model.invoke("go").content}).compile().invoke(
        {}, config={"callbacks": [handler]}
    )
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    trace = trace_of_run(mlflow_client, experiment_name, parent)
    attempts = spans_named(trace, "FailingOnce")
    assert [a.status.status_code.value for a in attempts] == ["ERROR", "OK"]
    assert attempts[1].get_attribute("retry_attempt") == 2
    assert [e.name for e in attempts[1].events] == ["retry"]
    assert [e.name for e in attempts[0].events] == ["exception"]
    assert trace.info.state.value == "OK"


# ---- linking under concurrency ----------------------------------------------------------------


def assert_traces_linked_exactly(client: MlflowClient, experiment: str, count: int) -> None:
    """Each trace belongs to its own run (used by the concurrency tests of the handler)."""
    parents, _ = runs_of(client, experiment)
    assert len(parents) == count
    assert len(traces_of(client, experiment)) == count
    for parent in parents:
        trace = trace_of_run(client, experiment, parent)
        assert str(langchain_run_id_of(trace)) == parent.data.tags["langchain_run_id"]
        n = int(root_span(trace).inputs["topic"].split("-")[1])
        # Tokens unique to each invocation prove the trace, the run and the inputs agree.
        assert parent.data.tags["user_id"] == f"user-{n}"
        assert trace.info.trace_metadata["mlflow.trace.user"] == f"user-{n}"
        assert trace.info.token_usage["input_tokens"] == 2 * (1000 + n)
        assert parent.data.metrics["total_input_tokens"] == 2 * (1000 + n)


# ---- sessions, redaction, switches -------------------------------------------------------------


def test_thread_id_groups_traces_into_sessions(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(mlflow_store, experiment_name)
    app = article_writer(repeating("x", 10, 5))
    for thread in ("t-1", "t-1", "t-2"):
        app.invoke({"topic": "a"}, config={"callbacks": [handler],
                                           "metadata": {"thread_id": thread}})
    app.invoke({"topic": "b"}, config={"callbacks": [handler]})
    assert handler.flush(60)

    def session(thread: str) -> int:
        return len(traces_of(mlflow_client, experiment_name,
                             filter_string=f"metadata.`mlflow.trace.session` = '{thread}'"))

    assert (session("t-1"), session("t-2")) == (2, 1)
    sessionless = [t for t in traces_of(mlflow_client, experiment_name)
                   if "mlflow.trace.session" not in t.info.trace_metadata]
    assert len(sessionless) == 1


def test_redaction_applies_to_traces_as_to_runs(mlflow_store, experiment_name, mlflow_client):
    def redact(text: str) -> str:
        return text.replace("secret", "<X>")

    handler = make_handler(mlflow_store, experiment_name, redactor=redact)
    app = article_writer(repeating("the secret answer", 10, 5))
    app.invoke(
        {"topic": "secret plans"},
        config={"callbacks": [handler],
                "metadata": {"user_id": "secret-agent", "thread_id": "secret-thread"}},
    )
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    trace = trace_of_run(mlflow_client, experiment_name, parent)
    stored = json.dumps([s.to_dict() for s in trace.data.spans]) + json.dumps(
        trace.info.to_dict()
    )
    assert "secret" not in stored
    assert root_span(trace).inputs == {"topic": "<X> plans"}
    assert spans_named(trace, "write")[0].outputs["article"] == "the <X> answer"
    assert parent.data.tags["user_id"] == trace.info.tags["user_id"] == "<X>-agent"
    assert trace.info.trace_metadata["mlflow.trace.user"] == "<X>-agent"
    assert trace.info.trace_metadata["mlflow.trace.session"] == "<X>-thread"


def test_log_traces_false_writes_runs_only(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(mlflow_store, experiment_name, log_traces=False)
    article_writer(repeating("x", 10, 5)).invoke({"topic": "a"}, config={"callbacks": [handler]})
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    assert traces_of(mlflow_client, experiment_name) == []
    assert TRACE_ID_TAG not in parent.data.tags


def test_log_artifacts_false_keeps_content_out_of_traces(
    mlflow_store, experiment_name, mlflow_client
):
    handler = make_handler(mlflow_store, experiment_name, log_artifacts=False)
    article_writer(repeating("x", 10, 5)).invoke({"topic": "a"}, config={"callbacks": [handler]})
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    trace = trace_of_run(mlflow_client, experiment_name, parent)
    assert all(s.inputs is None and s.outputs is None for s in trace.data.spans)
    assert trace.info.request_preview in (None, "")
    assert trace.info.token_usage["input_tokens"] == 20


def test_langchain_autolog_on_skips_our_trace(
    mlflow_store, experiment_name, mlflow_client, monkeypatch
):
    # Autolog writes its own traces to the global tracking URI: point it at the test store.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_store)  # an earlier test may have pinned another one
    mlflow.langchain.autolog(silent=True)
    try:
        handler = make_handler(mlflow_store, experiment_name)
        article_writer(repeating("x", 10, 5)).invoke(
            {"topic": "a"}, config={"callbacks": [handler]}
        )
        assert handler.flush(60)
    finally:
        mlflow.langchain.autolog(disable=True, silent=True)
        mlflow.flush_trace_async_logging()  # autolog's own trace, into the store, now
        mlflow.tracing.reset()  # drop the tracer provider bound to this test's store
        mlflow.set_tracking_uri(previous_uri)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    assert parent.data.tags[TRACE_SKIPPED_TAG] == SKIPPED_FOR_AUTOLOG
    assert TRACE_ID_TAG not in parent.data.tags
    assert traces_of(mlflow_client, experiment_name) == []
