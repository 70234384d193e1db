"""langgraph-swarm: two ``create_agent`` agents handing the conversation to each other.

Adapted from langchain-ai/langgraph-swarm-py ``tests/test_swarm.py`` (``test_basic_swarm``:
Alice the adder and Bob the pirate, two turns on one thread) and its ``README.md``
quickstart. ``create_swarm`` starts with a conditional edge from START (the router to the
active agent), which LangGraph runs as its hidden ``__start__`` task: never a node run.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.memory import MemorySaver

from configurable_agents.names import Metric, Param, Tag
from tests.realworld.harness import ReportingModel, check, handler_for, tool_call

langchain_agents = __import__("pytest").importorskip("langchain.agents")
langgraph_swarm = __import__("pytest").importorskip("langgraph_swarm")

PIRATE = "Ahoy, matey! Bob the pirate be at yer service. Arrr!"


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _swarm(model: ReportingModel) -> Any:
    create_handoff_tool = langgraph_swarm.create_handoff_tool
    alice = langchain_agents.create_agent(
        model,
        tools=[add, create_handoff_tool(agent_name="Bob")],
        system_prompt="You are Alice, an addition expert.",
        name="Alice",
    )
    bob = langchain_agents.create_agent(
        model,
        tools=[create_handoff_tool(agent_name="Alice", description="Transfer to Alice")],
        system_prompt="You are Bob, you speak like a pirate.",
        name="Bob",
    )
    workflow = langgraph_swarm.create_swarm([alice, bob], default_active_agent="Alice")
    return workflow.compile(checkpointer=MemorySaver())


def test_swarm_two_turns_without_a_start_node(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(
        script=[
            tool_call("transfer_to_bob", {}, "call_1", name="Alice"),
            PIRATE,
            tool_call("transfer_to_alice", {}, "call_2", name="Bob"),
            tool_call("add", {"a": 5, "b": 7}, "call_3", name="Alice"),
            "The sum of 5 and 7 is 12.",
        ]
    )
    app = _swarm(model)
    handler = handler_for(mlflow_store, experiment_name)
    config: Any = {"configurable": {"thread_id": "1"}, "callbacks": [handler]}

    turn_1 = app.invoke({"messages": [{"role": "user", "content": "i'd like to speak to Bob"}]},
                        config)
    turn_2 = app.invoke({"messages": [{"role": "user", "content": "what's 5 + 7?"}]}, config)

    # The app's results, as upstream asserts them.
    assert len(turn_1["messages"]) == 4 and turn_1["active_agent"] == "Bob"
    assert turn_1["messages"][-2].content == "Successfully transferred to Bob"
    assert turn_1["messages"][-1].content == PIRATE
    assert len(turn_2["messages"]) == 10 and turn_2["active_agent"] == "Alice"
    assert turn_2["messages"][-2].content == "12"
    assert turn_2["messages"][-1].content == "The sum of 5 and 7 is 12."

    logged = check(mlflow_client, experiment_name, handler, calls=2, tokens=model.reported)
    first, second = sorted(logged.parents, key=lambda r: r.info.start_time)
    # Turn 1: Alice hands off (model, tools), Bob answers (model). No node___start__.
    assert logged.node_ids(first) == ["Alice", "Bob", "model", "model", "tools"]
    assert first.data.metrics[Metric.NODE_COUNT] == 5
    # Turn 2 starts at the active agent (Bob), who hands back; Alice adds and answers.
    assert logged.node_ids(second) == [
        "Alice", "Bob", "model", "model", "model", "tools", "tools",
    ]
    assert second.data.metrics[Metric.NODE_COUNT] == 7
    assert all(r.data.params[Param.NODE_ID] != "__start__" for r in logged.nodes)
    assert {p.data.tags["thread_id"] for p in logged.parents} == {"1"}
    # The handoff tool's Command.PARENT leaves both its tools node and its agent's node.
    handoffs = sorted(
        (r.data.params[Param.NODE_ID], r.data.tags[Tag.HANDOFF_TO])
        for r in logged.nodes
        if Tag.HANDOFF_TO in r.data.tags
    )
    assert handoffs == [("Alice", "Bob"), ("Bob", "Alice"), ("tools", "Alice"), ("tools", "Bob")]
