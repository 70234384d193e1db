"""langgraph-supervisor: a supervisor handing work to a research agent, then a math agent.

Adapted from langchain-ai/langgraph-supervisor-py ``tests/test_supervisor.py``
(``test_supervisor_basic_workflow``: the FAANG headcount, ``web_search`` then parallel
``add`` calls, ``output_mode="last_message"``) and its ``README.md``. Each agent has its own
model (as users give each agent its own provider); the fakes report usage.
"""

from __future__ import annotations

from collections import Counter

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.prebuilt import create_react_agent

from configurable_agents.names import Metric, Param, Tag
from tests.fakes import usage
from tests.realworld.harness import ReportingModel, check, handler_for, tool_call

langgraph_supervisor = pytest.importorskip("langgraph_supervisor")

FINAL = "The combined headcount of the FAANG companies in 2024 is 1,977,586 employees."


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@tool
def web_search(query: str) -> str:
    """Search the web for information."""
    return "Meta 67,317; Apple 164,000; Amazon 1,551,000; Netflix 14,000; Google 181,269."


def _adds(*pairs: tuple[int, int], start: int) -> AIMessage:
    calls = [
        {"name": "add", "args": {"a": a, "b": b}, "id": f"call_{start + i}", "type": "tool_call"}
        for i, (a, b) in enumerate(pairs)
    ]
    return AIMessage("", tool_calls=calls, usage_metadata=usage(60, 18),
                     response_metadata={"model_name": "gemini-2.5-flash"})


def test_supervisor_research_then_math(mlflow_store, experiment_name, mlflow_client):
    supervisor_model = ReportingModel(script=[
        tool_call("transfer_to_research_expert", {}, "call_s1"),
        tool_call("transfer_to_math_expert", {}, "call_s2"),
        FINAL,
    ], input_tokens=90, output_tokens=20)
    research_model = ReportingModel(script=[
        tool_call("web_search", {"query": "FAANG headcount 2024"}, "call_r1"),
        "Headcounts found; add them together.",
    ], input_tokens=70, output_tokens=40)
    math_model = ReportingModel(script=[
        _adds((67317, 1551000), (164000, 14000), (181269, 0), start=1),
        _adds((1618317, 178000), (181269, 0), start=4),
        _adds((1796317, 181269), start=6),
        FINAL,
    ], input_tokens=80, output_tokens=15)
    math_agent = create_react_agent(model=math_model, tools=[add], name="math_expert")
    research_agent = create_react_agent(
        model=research_model, tools=[web_search], name="research_expert"
    )
    app = langgraph_supervisor.create_supervisor(
        [math_agent, research_agent], model=supervisor_model
    ).compile()
    handler = handler_for(mlflow_store, experiment_name)

    result = app.invoke(
        {"messages": [HumanMessage("what's the combined headcount of the FAANG companies?")]},
        {"callbacks": [handler]},
    )

    messages = result["messages"]
    assert len(messages) == 12  # as upstream: handoffs, each agent's last message, the answer
    assert messages[1].tool_calls[0]["name"] == "transfer_to_research_expert"
    assert messages[3].content == "Headcounts found; add them together."
    assert messages[6].tool_calls[0]["name"] == "transfer_to_math_expert"
    assert messages[8].content == FINAL and messages[11].content == FINAL
    reported = [m.reported for m in (supervisor_model, research_model, math_model)]
    tokens = (sum(r[0] for r in reported), sum(r[1] for r in reported))
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=tokens)
    parent = logged.parent
    assert parent.data.metrics[Metric.LLM_CALLS] == 3 + 2 + 4
    top = Counter(r.data.params[Param.NODE_ID] for r in logged.children_of[parent.info.run_id])
    assert top == {"supervisor": 3, "research_expert": 1, "math_expert": 1}
    # Inside each agent: its own agent/tools steps; the math agent's tool node runs once per
    # tool call (3 + 2 + 1 parallel adds).
    inner = {
        run.data.params[Param.NODE_ID]: Counter(
            r.data.params[Param.NODE_ID] for r in logged.nested(run)
        )
        for run in logged.children_of[parent.info.run_id]
        if run.data.params[Param.NODE_ID] != "supervisor"
    }
    assert inner == {
        "research_expert": {"agent": 2, "tools": 1},
        "math_expert": {"agent": 4, "tools": 6},
    }
    by_agent = {
        r.data.params[Param.NODE_ID]: r for r in logged.children_of[parent.info.run_id]
        if r.data.params[Param.NODE_ID] != "supervisor"
    }
    assert by_agent["math_expert"].data.metrics[Metric.LLM_CALLS] == 4
    assert by_agent["research_expert"].data.params[Param.TOOLS] == '["web_search"]'
    # Each handoff tool's Command.PARENT leaves its tools node and the supervisor node.
    handoffs = sorted((r.data.params[Param.NODE_ID], r.data.tags[Tag.HANDOFF_TO])
                      for r in logged.nodes if Tag.HANDOFF_TO in r.data.tags)
    assert handoffs == [
        ("supervisor", "math_expert"), ("supervisor", "research_expert"),
        ("tools", "math_expert"), ("tools", "research_expert"),
    ]
