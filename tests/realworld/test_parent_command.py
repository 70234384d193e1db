"""Subgraphs and multi-agent handoffs with ``Command(graph=Command.PARENT, goto=...)``.

Adapted from langchain-ai/langgraph ``libs/langgraph/tests/test_parent_command.py``
(``test_parent_command_from_nested_subgraph``) and the handoff example of
``docs/docs/concepts/multi_agent.md`` ("Handoffs": a tool returning
``Command(goto=agent, graph=Command.PARENT)``); the models are fakes reporting usage.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

from configurable_agents.names import Status, Tag
from tests.fakes import usage
from tests.realworld.harness import ReportingModel, check, handler_for


class ParentState(TypedDict):
    jump: bool
    visited: list[str]


def _child() -> Any:
    def node(state: ParentState) -> Any:
        if state["jump"]:
            return Command(graph=Command.PARENT, goto="second", update={"visited": ["child"]})
        return {"visited": ["child"]}

    builder = StateGraph(ParentState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    return builder.compile()


def test_subgraph_handoff_to_parent_is_finished_not_interrupted(
    mlflow_store, experiment_name, mlflow_client
):
    builder = StateGraph(ParentState)
    builder.add_node("child", _child())
    builder.add_node("second", lambda s: {"visited": [*s["visited"], "second"]})
    builder.add_edge(START, "child")
    builder.add_edge("second", END)
    graph = builder.compile()
    handler = handler_for(mlflow_store, experiment_name)

    out = graph.invoke({"jump": True, "visited": []}, {"callbacks": [handler]})

    assert out == {"jump": True, "visited": ["child", "second"]}
    logged = check(mlflow_client, experiment_name, handler, calls=1)
    parent = logged.parent
    assert Tag.INTERRUPTED not in parent.data.tags
    assert logged.node_ids(parent) == ["child", "node", "second"]
    by_id = {r.data.tags[Tag.NODE_ID]: r for r in logged.nested(parent)}
    assert by_id["node"].data.tags[Tag.HANDOFF_TO] == "second"
    assert by_id["node"].data.tags[Tag.STATUS] == Status.FINISHED


def _agent(name: str, peer: str, model: ReportingModel) -> Any:
    """A one-tool agent whose tool hands the conversation to ``peer`` in the parent graph."""

    @tool(f"transfer_to_{peer}")
    def transfer(tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
        """Hand the conversation to the other agent."""
        message = ToolMessage(f"Transferred to {peer}", tool_call_id=tool_call_id)
        return Command(goto=peer, graph=Command.PARENT, update={"messages": [message]})

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_node("tools", ToolNode([transfer]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route, ["tools", END])
    return builder.compile(name=name)


def test_multi_agent_handoff_through_a_tool(mlflow_store, experiment_name, mlflow_client):
    handoff = AIMessage(
        "",
        tool_calls=[{"name": "transfer_to_bob", "args": {}, "id": "call_1", "type": "tool_call"}],
        usage_metadata=usage(30, 5),
        response_metadata={"model_name": "gemini-2.5-flash"},
    )
    alice_model = ReportingModel(script=[handoff])
    bob_model = ReportingModel(script=["Bob here: done."], input_tokens=50, output_tokens=12)
    builder = StateGraph(MessagesState)
    builder.add_node("alice", _agent("alice", "bob", alice_model), destinations=("bob",))
    builder.add_node("bob", _agent("bob", "alice", bob_model), destinations=("alice",))
    builder.add_edge(START, "alice")
    graph = builder.compile()
    handler = handler_for(mlflow_store, experiment_name)

    out = graph.invoke({"messages": [("user", "hi")]}, {"callbacks": [handler]})

    assert out["messages"][-1].content == "Bob here: done."
    a_in, a_out = alice_model.reported
    b_in, b_out = bob_model.reported
    logged = check(
        mlflow_client, experiment_name, handler, calls=1, tokens=(a_in + b_in, a_out + b_out)
    )
    parent = logged.parent
    assert parent.data.tags[Tag.STATUS] == Status.FINISHED
    handed = {
        r.data.tags[Tag.NODE_ID]: r.data.tags[Tag.HANDOFF_TO]
        for r in logged.nested(parent)
        if Tag.HANDOFF_TO in r.data.tags
    }
    assert handed.get("tools") == "bob", handed
