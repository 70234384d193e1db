"""``graph.update_state`` with the app's callbacks is a state edit, not a workflow run.

Adapted from langchain-ai/langgraph ``libs/langgraph/tests/test_pregel.py``
(``test_conditional_state_graph_with_list_edge_inputs`` / the ``update_state(...,
as_node=...)`` steps of the human-in-the-loop tests): a graph with a conditional edge
paused before a node, edited, then resumed.
"""

from __future__ import annotations

from typing import TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from configurable_agents.names import Status
from tests.realworld.harness import ReportingModel, check, handler_for


class State(TypedDict, total=False):
    question: str
    answer: str


def test_update_state_is_not_logged_as_a_workflow(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=["draft answer", "final answer"])

    def answer(state: State) -> State:
        return {"answer": model.invoke(state["question"]).content}

    builder = StateGraph(State)
    builder.add_node("answer", answer)
    builder.add_node("publish", lambda s: {"answer": s["answer"].upper()})
    builder.add_edge(START, "answer")
    builder.add_conditional_edges("answer", lambda s: "publish" if s["answer"] else END)
    builder.add_edge("publish", END)
    graph = builder.compile(checkpointer=InMemorySaver(), interrupt_before=["publish"])
    handler = handler_for(mlflow_store, experiment_name, workflow_name="qa")
    config = {"callbacks": [handler], "configurable": {"thread_id": "1"}}

    graph.invoke({"question": "why?"}, config)
    graph.update_state(config, {"answer": "edited"}, as_node="answer")
    graph.update_state(config, {"answer": "edited again"})
    final = graph.invoke(None, config)

    assert final == {"question": "why?", "answer": "EDITED AGAIN"}
    logged = check(
        mlflow_client, experiment_name, handler, calls=2,
        statuses={Status.INTERRUPTED: 1, Status.FINISHED: 1}, tokens=model.reported,
    )
    assert all(p.data.metrics["node_count"] == 1 for p in logged.parents)
