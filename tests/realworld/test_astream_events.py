"""``astream_events(version="v2")`` over a graph with a prompt | model chain in a node.

Adapted from langchain-ai/langchain ``libs/core/tests/unit_tests/runnables/
test_runnable_events_v2.py`` (``test_event_stream_with_simple_chain``: prompt | model
streamed as events) run inside a LangGraph node, as LangGraph's docs stream agent events.
"""

from __future__ import annotations

import asyncio
from typing import TypedDict

from langchain_core.prompts import ChatPromptTemplate
from langgraph.graph import END, START, StateGraph

from tests.realworld.harness import ReportingModel, check, handler_for


class State(TypedDict, total=False):
    topic: str
    poem: str


def test_astream_events_v2(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=["roses are red"])
    chain = ChatPromptTemplate.from_messages([("human", "a poem about {topic}")]) | model

    async def poem(state: State) -> State:
        return {"poem": (await chain.ainvoke(dict(state))).content}

    builder = StateGraph(State)
    builder.add_node("poem", poem)
    builder.add_edge(START, "poem")
    builder.add_edge("poem", END)
    graph = builder.compile()
    handler = handler_for(mlflow_store, experiment_name)

    async def main() -> list[str]:
        tokens = []
        async for event in graph.astream_events(
            {"topic": "owls"}, {"callbacks": [handler]}, version="v2"
        ):
            if event["event"] == "on_chat_model_stream":
                tokens.append(event["data"]["chunk"].content)
        return tokens

    tokens = asyncio.run(main())
    assert "".join(tokens) == "roses are red"
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=model.reported)
    assert logged.node_ids(logged.parent) == ["poem"]
