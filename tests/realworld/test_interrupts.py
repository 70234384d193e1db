"""Human-in-the-loop pauses: ``interrupt()`` and static breakpoints, each resumed.

Adapted from langchain-ai/langgraph ``libs/langgraph/tests/test_pregel.py``
(``test_interrupt_before`` / ``test_interrupt_after`` style graphs compiled with
``interrupt_before=[...]`` / ``interrupt_after=[...]`` and resumed with ``invoke(None)``)
and ``libs/langgraph/tests/test_graph_callbacks.py`` (``on_interrupt`` for both kinds).
"""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from configurable_agents.names import InterruptKind, Status, Tag
from tests.realworld.harness import ReportingModel, check, handler_for


class State(TypedDict, total=False):
    topic: str
    draft: str
    approved: Any


def _graph(model: ReportingModel, ask_human: bool = False, **compile_kwargs: Any) -> Any:
    def write(state: State) -> State:
        return {"draft": model.invoke(f"write about {state['topic']}").content}

    def review(state: State) -> State:
        if ask_human:
            return {"approved": interrupt({"draft": state["draft"]})}
        return {"approved": True}

    builder = StateGraph(State)
    builder.add_node("write", write)
    builder.add_node("review", review)
    builder.add_edge(START, "write")
    builder.add_edge("write", "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=InMemorySaver(), **compile_kwargs)


@pytest.mark.parametrize(
    ("kind", "breakpoint"), [(InterruptKind.BEFORE, "review"), (InterruptKind.AFTER, "write")]
)
def test_static_breakpoint_pauses_like_interrupt_and_resume_finishes(
    kind, breakpoint, mlflow_store, experiment_name, mlflow_client
):
    model = ReportingModel(script=["a draft"])
    graph = _graph(model, **{kind: [breakpoint]})
    handler = handler_for(mlflow_store, experiment_name)
    config = {"callbacks": [handler], "configurable": {"thread_id": "t1"}}

    first = graph.invoke({"topic": "owls"}, config)
    assert "approved" not in first
    assert graph.get_state(config).next == ("review",)
    second = graph.invoke(None, config)
    assert second == {"topic": "owls", "draft": "a draft", "approved": True}

    logged = check(
        mlflow_client, experiment_name, handler, calls=2,
        statuses={Status.INTERRUPTED: 1, Status.FINISHED: 1}, tokens=model.reported,
    )
    paused = next(p for p in logged.parents if p.data.tags[Tag.STATUS] == Status.INTERRUPTED)
    assert paused.data.tags[Tag.INTERRUPT_KIND] == kind
    # Both pause between write and review: the node that ran last is write.
    assert paused.data.tags[Tag.INTERRUPTED_AT] == "write"


def test_static_breakpoint_passed_to_invoke_and_paused_again(
    mlflow_store, experiment_name, mlflow_client
):
    model = ReportingModel(script=["a draft"])
    graph = _graph(model)
    handler = handler_for(mlflow_store, experiment_name)
    config = {"callbacks": [handler], "configurable": {"thread_id": "t2"}}

    graph.invoke({"topic": "owls"}, config, interrupt_before=["write"])
    graph.invoke(None, config, interrupt_before=["review"])  # resumes, pauses again
    final = graph.invoke(None, config)

    assert final["approved"] is True
    logged = check(
        mlflow_client, experiment_name, handler, calls=3,
        statuses={Status.INTERRUPTED: 2, Status.FINISHED: 1}, tokens=model.reported,
    )
    assert sorted(p.data.metrics["node_count"] for p in logged.parents) == [0, 1, 1]


def test_interrupt_then_resume_with_command(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=["a draft"])
    graph = _graph(model, ask_human=True)
    handler = handler_for(mlflow_store, experiment_name)
    config = {"callbacks": [handler], "configurable": {"thread_id": "t3"}}

    first = graph.invoke({"topic": "owls"}, config)
    assert first["__interrupt__"][0].value == {"draft": "a draft"}
    final = graph.invoke(Command(resume="yes"), config)

    assert final["approved"] == "yes"
    logged = check(
        mlflow_client, experiment_name, handler, calls=2,
        statuses={Status.INTERRUPTED: 1, Status.FINISHED: 1}, tokens=model.reported,
    )
    paused = next(p for p in logged.parents if p.data.tags[Tag.STATUS] == Status.INTERRUPTED)
    assert paused.data.tags[Tag.INTERRUPT_KIND] == InterruptKind.INTERRUPT
    assert paused.data.tags[Tag.INTERRUPTED_AT] == "review"
