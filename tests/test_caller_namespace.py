"""Caller metadata lives in its own namespace: it never replaces a computed number.

``ca_metrics`` / ``ca_params`` / ``ca_tags`` keep their names unless the handler computes
that name; then they are written as ``ca.<name>`` (docs/guide/pipeline.md). Tail sampling
reads computed totals only. A metadata value whose ``__str__`` raises, or a lone
surrogate in state, costs that field only.
"""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from mlflow.tracking import MlflowClient

from configurable_agents.config.schema import ObservabilityConfig
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.diagnostics import take_recorded_errors
from configurable_agents.testing import InMemorySink
from tests.test_handler_shapes import make_handler, runs_of
from tests.test_traces import traces_of


class State(TypedDict, total=False):
    text: str
    log: Annotated[list[str], operator.add]


def graph() -> Any:
    def work(state: State) -> dict[str, Any]:
        return {"text": "done", "log": ["work"]}

    builder = StateGraph(State)
    builder.add_node("work", work)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    return builder.compile(name="namespaced")


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


def test_caller_metrics_and_params_never_replace_computed_ones(
    mlflow_store: str, experiment_name: str, mlflow_client: MlflowClient
) -> None:
    handler = make_handler(mlflow_store, experiment_name, workflow_version="2")
    graph().invoke({"text": "x"}, config={"callbacks": [handler], "metadata": {
        "ca_metrics": {"total_cost_usd": 999000, "node_count": 50, "score": 0.9},
        "ca_params": {"workflow_version": "forged", "prompts_sha": "abc"},
        "ca_tags": {"status": "FAILED", "free": "kept"},
    }})
    assert handler.flush(60)
    handler.close()
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    metrics, params, tags = parent.data.metrics, parent.data.params, parent.data.tags
    assert metrics["total_cost_usd"] == 0 and metrics["node_count"] == 1
    assert metrics["ca.total_cost_usd"] == 999000 and metrics["ca.node_count"] == 50
    assert metrics["score"] == 0.9  # no clash: the caller's own name
    assert params["workflow_version"] == "2" and params["ca.workflow_version"] == "forged"
    assert params["prompts_sha"] == "abc"
    assert tags["status"] == "FINISHED" and tags["ca.status"] == "FAILED"
    assert tags["free"] == "kept"


def test_tail_sampling_reads_the_computed_cost_only() -> None:
    memory = InMemorySink()
    config = ObservabilityConfig.model_validate(
        {"pipeline": {"sample_rate": 0.0, "sample_keep_cost_usd": 1.0}}
    )
    handler = MLflowCallbackHandler(config, sinks=[memory])
    graph().invoke({"text": "x"}, config={"callbacks": [handler], "metadata": {
        "ca_metrics": {"total_cost_usd": 999.0}}})
    assert handler.flush(10)
    handler.close()
    [facts] = memory.finished()
    assert facts.sampled_out and facts.totals.cost_usd == 0
    assert facts.caller.metrics == {"total_cost_usd": 999.0}


def test_an_unprintable_name_or_a_lone_surrogate_costs_that_field_only(
    mlflow_store: str, experiment_name: str, mlflow_client: MlflowClient
) -> None:
    handler = make_handler(mlflow_store, experiment_name)
    app = graph()
    app.invoke({"text": "x"}, config={"callbacks": [handler], "metadata": {
        "workflow_name": Unprintable(), "workflow_version": Unprintable()}})
    app.invoke({"text": "lone \ud800 surrogate"}, config={"callbacks": [handler]})
    assert handler.flush(60)
    stats = handler.stats()
    handler.close()
    assert stats.internal_errors == 0 and stats.exported == 2
    parents, _ = runs_of(mlflow_client, experiment_name)
    assert sorted(p.data.params["workflow_name"] for p in parents) == ["namespaced"] * 2
    assert len(traces_of(mlflow_client, experiment_name)) == 2  # the surrogate lost no trace


class _Exploding(dict):
    def __iter__(self):  # breaks the shallow copy the handler takes of inputs
        raise RuntimeError("cannot iterate")

    def keys(self):
        raise RuntimeError("cannot iterate")


@pytest.mark.internal_errors
def test_an_internal_error_is_recorded_for_the_test_suite() -> None:
    handler = MLflowCallbackHandler(ObservabilityConfig(), sinks=[InMemorySink()])
    handler.on_chain_start(None, _Exploding(a=1), run_id=uuid.uuid4())  # type: ignore[arg-type]
    handler.close()
    assert handler.stats().internal_errors == 1  # counted, never raised into the app ...
    assert [e for e in take_recorded_errors() if e.startswith("callback:")]  # ... and seen
