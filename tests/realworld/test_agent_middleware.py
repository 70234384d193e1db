"""``create_agent`` with middleware: a model-call limit and a fallback model.

Adapted from langchain-ai/langchain
``libs/langchain_v1/tests/unit_tests/agents/middleware/implementations/test_model_call_limit.py``
(``test_run_limit_with_create_agent``: a tool call, then the run limit ends the run with a
message) and ``.../implementations/test_model_fallback.py``
(``test_model_fallback_middleware_with_agent`` and ``..._exhausted_with_agent``: the primary
fails, ``ModelFallbackMiddleware`` answers with the next model, or every model fails).
"""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from configurable_agents.names import Metric, Param, Status, Tag
from tests.realworld.harness import Failing, ReportingModel, check, handler_for, tool_call

agents = pytest.importorskip("langchain.agents")
middleware = pytest.importorskip("langchain.agents.middleware")


@tool
def simple_tool(value: str) -> str:
    """A simple tool."""
    return value


def test_run_limit_ends_the_agent(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=[tool_call("simple_tool", {"value": "test"}, "1"), "unused"])
    agent = agents.create_agent(
        model=model,
        tools=[simple_tool],
        middleware=[middleware.ModelCallLimitMiddleware(run_limit=1)],
        checkpointer=InMemorySaver(),
    )
    handler = handler_for(mlflow_store, experiment_name)

    result = agent.invoke(
        {"messages": [HumanMessage("Hello")]},
        {"configurable": {"thread_id": "thread1"}, "callbacks": [handler]},
    )

    messages = result["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert "run limit" in messages[3].content
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=model.reported)
    parent = logged.parent
    assert parent.data.metrics[Metric.LLM_CALLS] == 1  # the limit stopped the second call
    # What ran: the limit's hook before each model turn (the second ends the run), the
    # model once, the counting hook after it, the tool once.
    assert logged.node_ids(parent) == [
        "ModelCallLimitMiddleware.after_model",
        "ModelCallLimitMiddleware.before_model",
        "ModelCallLimitMiddleware.before_model",
        "model",
        "tools",
    ]
    tools = next(r for r in logged.nested(parent) if r.data.params[Param.NODE_ID] == "tools")
    assert tools.data.params[Param.TOOLS] == '["simple_tool"]'


def test_fallback_middleware_answers(mlflow_store, experiment_name, mlflow_client):
    fallback = ReportingModel(script=["Fallback success"])
    agent = agents.create_agent(
        model=Failing(), middleware=[middleware.ModelFallbackMiddleware(fallback)]
    )
    handler = handler_for(mlflow_store, experiment_name)

    result = agent.invoke({"messages": [HumanMessage("Test")]}, {"callbacks": [handler]})

    assert len(result["messages"]) == 2
    assert result["messages"][1].content == "Fallback success"
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=fallback.reported)
    parent = logged.parent
    assert parent.data.metrics[Metric.LLM_CALLS] == 2  # the failed primary call is inside
    (model_run,) = logged.nested(parent)
    assert model_run.data.params[Param.NODE_ID] == "model"
    assert model_run.data.tags[Tag.STATUS] == Status.FINISHED


def test_fallback_middleware_exhausted(mlflow_store, experiment_name, mlflow_client):
    agent = agents.create_agent(
        model=Failing(), middleware=[middleware.ModelFallbackMiddleware(Failing(), Failing())]
    )
    handler = handler_for(mlflow_store, experiment_name)

    with pytest.raises(ConnectionError, match="primary provider down"):
        agent.invoke({"messages": [HumanMessage("Test")]}, {"callbacks": [handler]})

    logged = check(mlflow_client, experiment_name, handler, calls=1,
                   statuses={Status.FAILED: 1}, tokens=(0, 0))
    parent = logged.parent
    assert parent.data.tags[Tag.ERROR_TYPE] == "ConnectionError"
    assert parent.data.metrics[Metric.LLM_CALLS] == 3  # primary, then both fallbacks
    (model_run,) = logged.nested(parent)
    assert model_run.data.tags[Tag.STATUS] == Status.FAILED
