"""A ReAct agent (langgraph.prebuilt.create_react_agent) with two tools, observed in MLflow.

    python examples/react_agent.py              # logs to sqlite:///mlflow.db

The agent runs on the offline demo chat model, which calls every bound tool once
and then answers; the MLflow parent run shows the ``agent`` and ``tools`` nodes
as nested runs with their tokens and cost (priced as claude-haiku-4-5).
"""

from __future__ import annotations

import sys
import warnings

from langchain_core.messages import HumanMessage
from langgraph.prebuilt import create_react_agent

from configurable_agents.config import MLFlowConfig
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.runtime.demo_model import DemoChatModel
from configurable_agents.tools import calculator, web_search

MODEL = DemoChatModel(model="claude-haiku-4-5", temperature=0.0)
QUESTION = "How many days are in 52 weeks? Compute 52 * 7 and search for leap week calendars."


def build_agent():
    # LangGraph 1.x points to langchain.agents.create_agent; the prebuilt agent still
    # works and keeps this example free of the extra `langchain` dependency.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return create_react_agent(MODEL, [calculator, web_search], name="react_agent")


def main(
    tracking_uri: str = "sqlite:///mlflow.db", experiment_name: str = "react_agent"
) -> str | None:
    """Ask the agent one question with the handler attached; return the parent run id."""
    handler = MLflowCallbackHandler(
        MLFlowConfig(enabled=True, tracking_uri=tracking_uri, experiment_name=experiment_name),
        workflow_name="react_agent",
        workflow_version="1.0.0",
        params={"global_model": MODEL.model_name, "global_temperature": MODEL.temperature},
    )
    result = build_agent().invoke(
        {"messages": [HumanMessage(QUESTION)]},
        config={
            "callbacks": [handler],
            "metadata": {"user_id": "bob", "ca_tags": {"demo_model": "true"}},
        },
    )
    handler.flush(timeout=30)
    handler.close()
    print(result["messages"][-1].text)
    print(f"MLflow run: {handler.last_run_id}")
    return handler.last_run_id


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
