"""With ``redact_pii: true`` nothing below leaks (issue #15, item 8, the write side).

Real LangGraph graph with a real tool node, langchain-core fake chat models, the
real handler writing runs and the linked MLflow trace to a real sqlite store.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from tests.fakes import UsageChatModel, reply, usage
from tests.test_enterprise import everything_written
from tests.test_handler_shapes import make_handler, runs_of
from tests.test_traces import trace_of_run

EMAIL = "alice.leak@example.com"
PASSWORD = "Hunter2-Sup3r-S3cret"
SUBSCRIPTION_KEY = "0123456789abcdef0123456789abcdef"


@tool
def login(username: str, password: str) -> str:
    """Log in to the legacy system."""
    return f"logged in as {username}"


class LoginModel(UsageChatModel):
    """Calls ``login`` with a password once, then answers."""

    messages: Any = iter(())

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        if not any(isinstance(m, ToolMessage) for m in messages):
            message = AIMessage("", tool_calls=[{
                "name": "login", "args": {"username": "alice", "password": PASSWORD},
                "id": "call_1", "type": "tool_call"}],
                usage_metadata=usage(50, 10), response_metadata={"model_name": "gpt-4o"})
        else:
            message = reply("done", 60, 5, "gpt-4o")
        return ChatResult(generations=[ChatGeneration(message=message)])


def agent() -> Any:
    model = LoginModel(model_name="gpt-4o", default_headers={
        "Ocp-Apim-Subscription-Key": SUBSCRIPTION_KEY})

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_node("tools", ToolNode([login]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route)
    builder.add_edge("tools", "model")
    return builder.compile()


def test_nothing_listed_in_item_8_leaks(mlflow_store, experiment_name, mlflow_client, caplog):
    caplog.set_level(logging.DEBUG, logger="configurable_agents")
    handler = make_handler(mlflow_store, experiment_name, redact_pii=True,
                           run_name="{requester}-{timestamp}")
    agent().invoke({"messages": [("user", "log me in")]}, config={
        "callbacks": [handler],
        "metadata": {"workflow_name": f"wf-{EMAIL}", "requester": EMAIL},
    })
    assert handler.flush(60)
    assert handler.stats().internal_errors == 0
    written = everything_written(mlflow_client, experiment_name)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    trace = json.dumps(trace_of_run(mlflow_client, experiment_name, parent).to_dict(), default=str)
    for secret in (EMAIL, PASSWORD, SUBSCRIPTION_KEY):
        assert secret not in written, secret
        assert secret not in trace, _debug_where(trace, secret)
        assert secret not in caplog.text, secret
    assert "alice" in written  # the username is not a secret: only the password goes


def _debug_where(trace: str, secret: str) -> list[str]:
    out, start = [], 0
    while (i := trace.find(secret, start)) >= 0:
        out.append(trace[max(0, i - 200): i + 40])
        start = i + 1
    return out
