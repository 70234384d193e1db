"""``RetryPolicy`` on a node whose provider fails twice, and one that never recovers.

Adapted from langchain-ai/langgraph ``libs/langgraph/tests/test_pregel.py``
(``test_node_retry`` style: a node raising until its ``retry_policy`` lets it pass, and
one exhausting ``max_attempts``).
"""

from __future__ import annotations

from typing import TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy

from configurable_agents.names import Metric, Status
from tests.fakes import flaky
from tests.realworld.harness import ReportingModel, check, handler_for


class State(TypedDict, total=False):
    text: str


def _graph(model: ReportingModel, fails: int) -> object:
    fail = flaky(fails, ConnectionError)

    def call(state: State) -> State:
        fail()
        return {"text": model.invoke("go").content}

    builder = StateGraph(State)
    builder.add_node(
        "call", call,
        retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.001, jitter=False),
    )
    builder.add_edge(START, "call")
    builder.add_edge("call", END)
    return builder.compile()


def test_retry_policy_recovers(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=["fine"])
    handler = handler_for(mlflow_store, experiment_name)
    assert _graph(model, 2).invoke({}, {"callbacks": [handler]}) == {"text": "fine"}
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=model.reported)
    assert logged.parent.data.metrics[Metric.RETRY_COUNT] == 2
    (node,) = logged.nested(logged.parent)
    assert node.data.metrics[Metric.RETRIES] == 2


def test_retry_policy_exhausted(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=["fine"])
    handler = handler_for(mlflow_store, experiment_name)
    with pytest.raises(ConnectionError, match="transient failure 3"):
        _graph(model, 5).invoke({}, {"callbacks": [handler]})
    logged = check(
        mlflow_client, experiment_name, handler, calls=1,
        statuses={Status.FAILED: 1}, tokens=(0, 0),
    )
    (node,) = logged.nested(logged.parent)
    assert node.info.status == Status.FAILED and node.data.metrics[Metric.RETRIES] == 2
