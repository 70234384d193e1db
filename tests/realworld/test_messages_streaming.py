"""``stream_mode="messages"`` over a node that calls ``llm.invoke``: with and without usage.

Adapted from langchain-ai/docs ``src/oss/use-streaming.mdx`` ("LLM tokens": a
``call_model`` node calling ``llm.invoke``, the graph run with ``stream_mode="messages"``;
"the message events are emitted even when the LLM is run using .invoke"), with the real
``ChatOpenAI`` on a custom ``base_url`` (the loopback stub, tests/fake_provider_server.py).
LangGraph streams the call inside ``invoke``, so ``on_llm_end`` gets a plain message built
from the chunks: a custom ``base_url`` without ``stream_usage`` gets no usage at all (the
run is estimated and says how to fix it), with ``stream_usage=True`` the usage is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langgraph.graph import START, StateGraph
from mlflow.tracking import MlflowClient

from configurable_agents.names import Artifact, Metric, Tag
from tests import fakes
from tests.fake_provider_server import TEXT_PARTS, FakeProviderServer
from tests.realworld.harness import check, handler_for

langchain_openai = pytest.importorskip("langchain_openai")

REPLY = "".join(TEXT_PARTS)
USAGE = {"prompt_tokens": 14, "completion_tokens": 9, "total_tokens": 23}
# gpt-4o-mini list prices, USD per token.
IN_PRICE, OUT_PRICE = 0.15 / 1e6, 0.60 / 1e6


@pytest.fixture(scope="module")
def stub() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer().start()
    server.openai_usage = USAGE
    yield server
    server.stop()


@pytest.fixture
def byte_tokens() -> Iterator[None]:
    """o200k_base cannot be downloaded here: a byte-level encoding stands in (1 byte, 1 token)."""
    with fakes.byte_tokens():
        yield


@dataclass
class MyState:
    topic: str
    joke: str = ""


def _joke_graph(llm: Any) -> Any:
    def call_model(state: MyState) -> dict[str, str]:
        """Call the LLM to generate a joke about a topic."""
        response = llm.invoke([{"role": "user", "content": f"Generate a joke about {state.topic}"}])
        return {"joke": response.content}

    return StateGraph(MyState).add_node(call_model).add_edge(START, "call_model").compile()


def _stream(graph: Any, handler: Any) -> str:
    tokens = []
    for chunk, metadata in graph.stream(
        {"topic": "ice cream"}, {"callbacks": [handler]}, stream_mode="messages"
    ):
        assert metadata["langgraph_node"] == "call_model"
        if chunk.content:
            tokens.append(chunk.content)
    return "|".join(tokens)


def _text(client: MlflowClient, run_id: str, path: str) -> str:
    with open(client.download_artifacts(run_id, path), encoding="utf-8") as fh:
        return fh.read()


def test_messages_mode_without_stream_usage_is_estimated_and_hinted(
    stub, byte_tokens, mlflow_store, experiment_name, mlflow_client
):
    llm = langchain_openai.ChatOpenAI(
        model="gpt-4o-mini", base_url=f"{stub.url}/v1", api_key="sk-test", max_retries=0
    )
    handler = handler_for(mlflow_store, experiment_name)

    streamed = _stream(_joke_graph(llm), handler)

    assert streamed == "|".join(TEXT_PARTS)  # the app still gets every token
    assert stub.requests[-1][1]["stream"] is True
    assert "stream_options" not in stub.requests[-1][1]  # custom base_url: no usage asked
    logged = check(mlflow_client, experiment_name, handler, calls=1)
    parent = logged.parent
    (node,) = logged.nested(parent)
    # Estimated from the texts the run shows (one byte, one token with the stand-in encoding).
    prompt = _text(mlflow_client, node.info.run_id, Artifact.PROMPT)
    response = _text(mlflow_client, node.info.run_id, Artifact.RESPONSE)
    tokens = (len(prompt.encode()), len(response.encode()))
    assert (parent.data.metrics[Metric.TOTAL_INPUT_TOKENS],
            parent.data.metrics[Metric.TOTAL_OUTPUT_TOKENS]) == tokens
    assert parent.data.metrics[Metric.TOTAL_COST_USD] == pytest.approx(
        tokens[0] * IN_PRICE + tokens[1] * OUT_PRICE, rel=1e-6
    )
    for run in (parent, node):
        assert run.data.tags[Tag.TOKENS_ESTIMATED] == "true"
        assert "stream_usage=True" in run.data.tags[Tag.USAGE_HINT]




def test_messages_mode_with_stream_usage_is_exact(
    stub, mlflow_store, experiment_name, mlflow_client
):
    llm = langchain_openai.ChatOpenAI(
        model="gpt-4o-mini", base_url=f"{stub.url}/v1", api_key="sk-test", max_retries=0,
        stream_usage=True,
    )
    handler = handler_for(mlflow_store, experiment_name)

    streamed = _stream(_joke_graph(llm), handler)

    assert streamed == "|".join(TEXT_PARTS)
    assert stub.requests[-1][1]["stream_options"] == {"include_usage": True}
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=(14, 9),
                   cost=14 * IN_PRICE + 9 * OUT_PRICE)
    parent = logged.parent
    assert Tag.TOKENS_ESTIMATED not in parent.data.tags
    assert Tag.USAGE_HINT not in parent.data.tags
    (node,) = logged.nested(parent)
    assert Metric.TIME_TO_FIRST_TOKEN_MS in node.data.metrics  # it was streamed
