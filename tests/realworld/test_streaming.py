"""``stream`` / ``astream`` in every stream mode left early, and a cancelled ``ainvoke``.

Adapted from langchain-ai/langgraph ``libs/langgraph/tests/test_pregel.py`` and
``test_pregel_async.py`` (the stream-mode tests over a two-node research/write graph,
``stream_mode=[...]`` lists, and the cancellation tests that cancel an ``ainvoke`` task
mid-graph). A client that stops reading is not a failure: the parent is KILLED with
``stop_reason``, and what did run is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypedDict

import pytest
from langchain_core.runnables import RunnableLambda
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from configurable_agents.names import Status, StopReason, Tag
from tests.realworld.harness import ReportingModel, check, handler_for

MODES = ["values", "updates", "messages", "custom", "debug", "tasks", "checkpoints"]


class State(TypedDict, total=False):
    topic: str
    research: str
    article: str


def _graph(model: ReportingModel, slow_write: bool = False) -> Any:
    def research(state: State) -> State:
        get_stream_writer()({"progress": "researching"})
        return {"research": model.invoke(f"research {state['topic']}").content}

    def write(state: State) -> State:
        return {"article": model.invoke(f"write {state['research']}").content}

    async def awrite(state: State) -> State:
        if slow_write:
            await asyncio.sleep(30)
        return {"article": (await model.ainvoke(f"write {state['research']}")).content}

    builder = StateGraph(State)
    builder.add_node("research", research)
    builder.add_node("write", RunnableLambda(write, afunc=awrite, name="write"))
    builder.add_edge(START, "research")
    builder.add_edge("research", "write")
    builder.add_edge("write", END)
    return builder.compile(checkpointer=None)


def _research_done(chunk: Any) -> bool:
    mode, data = chunk
    return mode == "updates" and "research" in data


@pytest.mark.parametrize("mode", MODES)
def test_stream_left_with_break_is_killed_closed_early(
    mode, mlflow_store, experiment_name, mlflow_client
):
    model = ReportingModel(script=["notes", "article"])
    graph = _graph(model)
    if mode == "checkpoints":
        from langgraph.checkpoint.memory import InMemorySaver

        graph = graph.builder.compile(checkpointer=InMemorySaver())
    handler = handler_for(mlflow_store, experiment_name)
    config = {"callbacks": [handler], "configurable": {"thread_id": mode}}

    seen = []
    for chunk in graph.stream({"topic": "owls"}, config, stream_mode=[mode, "updates"]):
        seen.append(chunk[0])
        if _research_done(chunk):
            break

    assert "updates" in seen
    logged = check(
        mlflow_client, experiment_name, handler, calls=1,
        statuses={Status.KILLED: 1}, tokens=model.reported,
    )
    parent = logged.parent
    assert parent.data.tags[Tag.STOP_REASON] == StopReason.CLOSED_EARLY
    assert logged.node_ids(parent) == ["research"]
    assert model.reported == (40, 10)


@pytest.mark.parametrize("mode", ["values", "updates", "messages", "custom"])
def test_astream_left_early_is_killed_closed_early(
    mode, mlflow_store, experiment_name, mlflow_client
):
    model = ReportingModel(script=["notes", "article"])
    graph = _graph(model)
    handler = handler_for(mlflow_store, experiment_name)

    async def main() -> None:
        stream = graph.astream({"topic": "owls"}, {"callbacks": [handler]},
                               stream_mode=[mode, "updates"])
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                if _research_done(chunk):
                    break

    asyncio.run(main())
    logged = check(
        mlflow_client, experiment_name, handler, calls=1,
        statuses={Status.KILLED: 1}, tokens=model.reported,
    )
    assert logged.parent.data.tags[Tag.STOP_REASON] == StopReason.CLOSED_EARLY


def test_stream_read_to_the_end_is_finished(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=["notes", "article"])
    handler = handler_for(mlflow_store, experiment_name)
    chunks = list(_graph(model).stream({"topic": "owls"}, {"callbacks": [handler]}))
    assert chunks[-1] == {"write": {"article": "article"}}
    check(mlflow_client, experiment_name, handler, calls=1, tokens=model.reported)


def test_cancelled_ainvoke_is_killed_cancelled_with_tokens_so_far(
    mlflow_store, experiment_name, mlflow_client
):
    model = ReportingModel(script=["notes", "article"])
    graph = _graph(model, slow_write=True)
    handler = handler_for(mlflow_store, experiment_name)

    async def main() -> None:
        task = asyncio.create_task(graph.ainvoke({"topic": "owls"}, {"callbacks": [handler]}))
        while model.reported == (0, 0):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    logged = check(
        mlflow_client, experiment_name, handler, calls=1,
        statuses={Status.KILLED: 1}, tokens=model.reported,
    )
    parent = logged.parent
    assert parent.data.tags[Tag.STOP_REASON] == StopReason.CANCELLED
    statuses = {r.data.tags[Tag.NODE_ID]: r.data.tags[Tag.STATUS] for r in logged.nested(parent)}
    assert statuses == {"research": Status.FINISHED, "write": Status.KILLED}


def test_report_costs_counts_early_stops_apart_from_failures(
    mlflow_store, experiment_name, mlflow_client
):
    from configurable_agents.reports.reporting import cost_report

    model = ReportingModel(script=["notes", "article"])
    graph = _graph(model)
    handler = handler_for(mlflow_store, experiment_name)
    graph.invoke({"topic": "owls"}, {"callbacks": [handler]})
    for chunk in graph.stream({"topic": "owls"}, {"callbacks": [handler]},
                              stream_mode=["updates"]):
        if _research_done(chunk):
            break
    check(
        mlflow_client, experiment_name, handler, calls=2,
        statuses={Status.FINISHED: 1, Status.KILLED: 1}, tokens=model.reported,
    )
    report = cost_report(["status"], tracking_uri=mlflow_store, experiments=[experiment_name])
    totals = report.totals
    assert (totals.killed, totals.failed, totals.success_rate) == (1, 0, 1.0)
    assert totals.cost_usd > 0
