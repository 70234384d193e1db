"""The prebuilt ReAct agent making two tool calls in parallel, then answering.

Adapted from langchain-ai/langgraph ``libs/prebuilt/tests/test_react_agent.py``
(``test_react_agent_parallel_tool_calls``: a fake model emitting two tool calls in one
message, ``ToolNode`` running both, then a final answer).
"""

from __future__ import annotations

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.prebuilt import create_react_agent

from configurable_agents.names import Param
from tests.fakes import usage
from tests.realworld.harness import ReportingModel, check, handler_for


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@tool
def population(city: str) -> int:
    """How many people live in a city."""
    return len(city) * 100_000


def test_react_agent_parallel_tool_calls(mlflow_store, experiment_name, mlflow_client):
    calls = AIMessage(
        "",
        tool_calls=[
            {"name": "weather", "args": {"city": "Paris"}, "id": "c1", "type": "tool_call"},
            {"name": "population", "args": {"city": "Paris"}, "id": "c2", "type": "tool_call"},
        ],
        usage_metadata=usage(90, 20),
        response_metadata={"model_name": "gemini-2.5-flash"},
    )
    model = ReportingModel(script=[calls, "Sunny, 500000 people."], input_tokens=150)
    agent = create_react_agent(model, [weather, population])
    handler = handler_for(mlflow_store, experiment_name)

    out = agent.invoke({"messages": [("user", "Paris?")]}, {"callbacks": [handler]})

    assert out["messages"][-1].content == "Sunny, 500000 people."
    assert [m.content for m in out["messages"] if m.type == "tool"] == ["sunny in Paris", "500000"]
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=(240, 30))
    nodes = logged.nested(logged.parent)
    # The agent's v2 tool node runs once per tool call (a Send each), in parallel.
    assert logged.node_ids(logged.parent) == ["agent", "agent", "tools", "tools"]
    tools = sorted(
        r.data.params[Param.TOOLS] for r in nodes if r.data.params[Param.NODE_ID] == "tools"
    )
    assert tools == ['["population"]', '["weather"]']
