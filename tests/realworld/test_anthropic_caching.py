"""Anthropic prompt caching in a chatbot graph: 5-minute and 1-hour cache writes, then reads.

Adapted from langchain-ai/docs ``src/oss/integrations/chat/anthropic.md`` ("Prompt caching":
"Incremental caching in conversational applications", a ``messages_reducer`` marking the
last user block with ``cache_control`` and a one-node ``model`` graph on a thread; its
turns report no cache, then a 1498-token write, then a 1498-token read plus a 269-token
write; "Extended caching": ``betas=["extended-cache-ttl-2025-04-11"]`` with ``ttl: 1h``).
The real ChatAnthropic talks to the loopback stub (tests/fake_provider_server.py), which
answers each turn with that turn's raw Anthropic usage; the last turn streams
(``astream(stream_mode="messages")``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import MemorySaver
from langgraph.graph import START, StateGraph, add_messages

from configurable_agents.names import Metric, Param
from tests.fake_provider_server import TEXT_PARTS, FakeProviderServer
from tests.realworld.harness import check, handler_for

langchain_anthropic = pytest.importorskip("langchain_anthropic")

REPLY = "".join(TEXT_PARTS)


def _usage(fresh: int, out: int, read: int = 0, w5m: int = 0, w1h: int = 0) -> dict[str, Any]:
    """Anthropic's raw usage object (``input_tokens`` excludes cache reads and writes)."""
    return {"input_tokens": fresh, "output_tokens": out, "cache_read_input_tokens": read,
            "cache_creation_input_tokens": w5m + w1h,
            "cache_creation": {"ephemeral_5m_input_tokens": w5m, "ephemeral_1h_input_tokens": w1h}}


TURNS = [
    ("Hi! I'm Bob.", _usage(20, 25)),
    ("Check out this readme: <the LangChain README>", _usage(12, 180, w5m=1498)),
    ("What was my name again?", _usage(9, 16, read=1498, w5m=269)),
    ("And keep this for an hour, please.", _usage(8, 12, read=1767, w1h=300)),
]


def _cost(u: dict[str, Any]) -> float:
    """claude-sonnet-4 list prices per 1M: $3 in, $0.30 cache read, $3.75 / $6 5-min / 1-hour
    cache write, $15 out."""
    c = u["cache_creation"]
    return (u["input_tokens"] * 3 + u["cache_read_input_tokens"] * 0.3
            + c["ephemeral_5m_input_tokens"] * 3.75 + c["ephemeral_1h_input_tokens"] * 6
            + u["output_tokens"] * 15) / 1e6


@pytest.fixture(scope="module")
def stub() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer().start()
    yield server
    server.stop()


def messages_reducer(left: list, right: list) -> list:
    # Update last user message (keeping a marker the caller set, e.g. a one-hour TTL)
    for i in range(len(right) - 1, -1, -1):
        if right[i].type == "human":
            right[i].content[-1].setdefault("cache_control", {"type": "ephemeral"})
            break
    return add_messages(left, right)


class State(TypedDict):
    messages: Annotated[list, messages_reducer]


def test_incremental_caching_chatbot(stub, mlflow_store, experiment_name, mlflow_client):
    llm = langchain_anthropic.ChatAnthropic(
        model="claude-sonnet-4", base_url=stub.url, api_key="sk-ant-test", max_retries=0,
        betas=["extended-cache-ttl-2025-04-11"],
    )

    def call_model(state: State) -> dict[str, list]:
        return {"messages": [llm.invoke(state["messages"])]}

    workflow = StateGraph(state_schema=State)
    workflow.add_edge(START, "model")
    workflow.add_node("model", call_model)
    app = workflow.compile(checkpointer=MemorySaver())
    handler = handler_for(mlflow_store, experiment_name)
    config: Any = {"configurable": {"thread_id": "abc123"}, "callbacks": [handler]}

    details = []
    for query, usage in TURNS[:3]:
        stub.anthropic_usage = usage
        output = app.invoke({"messages": [HumanMessage([{"type": "text", "text": query}])]},
                            config)
        assert output["messages"][-1].content == REPLY
        details.append(output["messages"][-1].usage_metadata["input_token_details"])

    # The last turn streams, with a one-hour cache write.
    query, usage = TURNS[3]
    stub.anthropic_usage = usage
    marked = HumanMessage([{"type": "text", "text": query,
                            "cache_control": {"type": "ephemeral", "ttl": "1h"}}])

    async def stream() -> str:
        parts = []
        async for chunk, _meta in app.astream({"messages": [marked]}, config,
                                              stream_mode="messages"):
            parts.append(chunk.content if isinstance(chunk.content, str) else "")
        return "".join(parts)

    assert asyncio.run(stream()) == REPLY
    # What the app sees, as the guide prints it (the client folds writes into input_tokens).
    assert [d["cache_read"] for d in details] == [0, 0, 1498]
    assert details[1]["ephemeral_5m_input_tokens"] == 1498
    body = stub.requests[-1][1]
    assert body["stream"] is True and body["messages"][-1]["content"][-1]["cache_control"] == {
        "type": "ephemeral", "ttl": "1h"}

    raw = [u for _q, u in TURNS]
    tokens = (
        sum(u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
            for u in raw),
        sum(u["output_tokens"] for u in raw),
    )
    logged = check(mlflow_client, experiment_name, handler, calls=4, tokens=tokens,
                   cost=sum(_cost(u) for u in raw))
    parents = sorted(logged.parents, key=lambda r: r.info.start_time)
    writes = [p.data.metrics[Metric.TOTAL_CACHE_WRITE_TOKENS] for p in parents]
    reads = [p.data.metrics[Metric.TOTAL_CACHED_INPUT_TOKENS] for p in parents]
    assert writes == [0, 1498, 269, 300]
    assert reads == [0, 0, 1498, 1767]
    for parent, u in zip(parents, raw, strict=True):
        assert parent.data.metrics[Metric.TOTAL_COST_USD] == pytest.approx(_cost(u), abs=1e-8)
        assert logged.node_ids(parent) == ["model"]
        (node,) = logged.nested(parent)
        assert node.data.params[Param.NODE_MODEL] == "claude-sonnet-4"
    assert {p.data.tags["thread_id"] for p in parents} == {"abc123"}
