"""Conditional edges that loop, and the loop that never ends (recursion limit).

Adapted from langchain-ai/langgraph ``libs/langgraph/tests/test_pregel.py``
(``test_conditional_graph`` / ``test_recursion_limit``-style loops: an agent node and a
router that goes back until a condition holds; ``GraphRecursionError`` when it never does).
"""

from __future__ import annotations

from typing import TypedDict

import pytest
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph

from configurable_agents.names import Status, Tag
from tests.realworld.harness import ReportingModel, check, handler_for


class State(TypedDict, total=False):
    n: int
    log: str


def _loop(model: ReportingModel, stop_at: int) -> object:
    def agent(state: State) -> State:
        return {"n": state["n"] + 1, "log": model.invoke(str(state["n"])).content}

    def route(state: State) -> str:
        return END if state["n"] >= stop_at else "tools"

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_node("tools", lambda s: {"log": "tool ran"})
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile()


def test_conditional_loop_until_done(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=["step"])
    handler = handler_for(mlflow_store, experiment_name)
    out = _loop(model, stop_at=3).invoke({"n": 0}, {"callbacks": [handler]})
    assert out == {"n": 3, "log": "step"}
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=(120, 30))
    assert logged.node_ids(logged.parent) == ["agent"] * 3 + ["tools"] * 2


def test_recursion_limit_is_a_failed_run(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=["step"])
    handler = handler_for(mlflow_store, experiment_name)
    with pytest.raises(GraphRecursionError):
        _loop(model, stop_at=10**6).invoke(
            {"n": 0}, {"callbacks": [handler], "recursion_limit": 6}
        )
    logged = check(
        mlflow_client, experiment_name, handler, calls=1,
        statuses={Status.FAILED: 1}, tokens=model.reported,
    )
    assert logged.parent.data.tags[Tag.ERROR_TYPE] == "GraphRecursionError"
    assert len(logged.nested(logged.parent)) == 6
