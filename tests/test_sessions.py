"""Conversations and users: a three-turn LangGraph thread as one MLflow trace session.

LangGraph's ``thread_id`` (or a ``session_id`` in the invocation metadata) becomes the trace's
``mlflow.trace.session`` and ``user_id`` its ``mlflow.trace.user``, which MLflow's Sessions
view groups by; ``report costs --group-by session`` groups the runs the same way.
"""

from __future__ import annotations

import json
import operator
from typing import Annotated, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from mlflow.tracing.client import TracingClient
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from configurable_agents.cli import app as cli
from tests.test_handler_shapes import make_handler


class Chat(TypedDict, total=False):
    turns: Annotated[list[str], operator.add]
    reply: str


def chat_app():
    def respond(state: Chat) -> dict[str, object]:
        return {"reply": f"turn {len(state['turns'])}: noted {state['turns'][-1]}"}

    graph = StateGraph(Chat)
    graph.add_node("respond", respond)
    graph.add_edge(START, "respond")
    graph.add_edge("respond", END)
    return graph.compile(checkpointer=InMemorySaver())


def test_three_turns_are_one_session(mlflow_store, experiment_name):
    handler = make_handler(mlflow_store, experiment_name, workflow_name="chat")
    app = chat_app()
    for text in ("hello", "my order is late", "thanks"):
        app.invoke({"turns": [text]}, config={
            "callbacks": [handler], "configurable": {"thread_id": "conv-42"},
            "metadata": {"user_id": "alice"}})
    app.invoke({"turns": ["other"]}, config={
        "callbacks": [handler], "metadata": {"session_id": "web-7", "user_id": "bob"},
        "configurable": {"thread_id": "web-7"}})
    assert handler.flush(timeout=30)
    handler.close(timeout=10)

    experiment = MlflowClient(mlflow_store).get_experiment_by_name(experiment_name)
    traces = TracingClient(mlflow_store).search_traces(
        locations=[experiment.experiment_id],
        filter_string="metadata.`mlflow.trace.session` = 'conv-42'")
    assert len(traces) == 3
    assert {t.info.trace_metadata["mlflow.trace.user"] for t in traces} == {"alice"}

    result = CliRunner().invoke(cli, [
        "report", "costs", "--tracking-uri", mlflow_store, "-e", experiment_name,
        "--group-by", "session", "--format", "json"])
    assert result.exit_code == 0, result.output
    groups = {g["session"]: g["runs"] for g in json.loads(result.stdout)["groups"]}
    assert groups == {"conv-42": 3, "web-7": 1}
