"""Attach the MLflow handler to a hand-written LangGraph app (no YAML involved).

    python examples/langgraph_app.py            # logs to sqlite:///mlflow.db
    mlflow ui --backend-store-uri sqlite:///mlflow.db

A two-node support-ticket app: ``classify`` then ``reply``. It runs offline on
the demo chat model, priced as gpt-4o-mini; swap in ``ChatOpenAI(model=...)`` and
nothing else changes. The only observability code is the three marked lines.
"""

from __future__ import annotations

import sys
from typing import TypedDict

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph

from configurable_agents.config import MLFlowConfig
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.runtime.demo_model import DemoChatModel

MODEL = DemoChatModel(model="gpt-4o-mini", temperature=0.2)


class Ticket(TypedDict, total=False):
    message: str
    category: str
    reply: str


def classify(state: Ticket) -> Ticket:
    prompt = f"Classify this support ticket in about 5 words: {state['message']}"
    return {"category": MODEL.invoke([HumanMessage(prompt)]).text}


def reply(state: Ticket) -> Ticket:
    prompt = (
        f"Write a friendly reply of about 60 words to this ticket: {state['message']}\n"
        f"Category: {state['category']}"
    )
    return {"reply": MODEL.invoke([HumanMessage(prompt)]).text}


def build_app():
    graph = StateGraph(Ticket)
    graph.add_node("classify", classify)
    graph.add_node("reply", reply)
    graph.add_edge(START, "classify")
    graph.add_edge("classify", "reply")
    graph.add_edge("reply", END)
    return graph.compile(name="support_ticket")


def main(
    tracking_uri: str = "sqlite:///mlflow.db", experiment_name: str = "langgraph_app"
) -> str | None:
    """Run the app once with the handler attached; return the MLflow parent run id."""
    app = build_app()
    # 1. one handler per process (it batches and writes in the background)
    handler = MLflowCallbackHandler(
        MLFlowConfig(enabled=True, tracking_uri=tracking_uri, experiment_name=experiment_name),
        workflow_name="support_ticket",
        workflow_version="1.0.0",
        params={"global_model": MODEL.model_name, "global_temperature": MODEL.temperature},
    )
    # 2. attach it per invocation; metadata becomes tags (attribution, demo marker)
    result = app.invoke(
        {"message": "My invoice for March shows the wrong VAT number."},
        config={
            "callbacks": [handler],
            "metadata": {"user_id": "alice", "team": "support", "ca_tags": {"demo_model": "true"}},
        },
    )
    # 3. make sure everything is in MLflow before the script exits
    handler.flush(timeout=30)
    handler.close()
    print(f"category: {result['category']}\nreply: {result['reply']}")
    print(f"MLflow run: {handler.last_run_id}")
    return handler.last_run_id


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
