"""Fallbacks across providers wherever ``with_fallbacks`` sits: a chain, a node, a subgraph.

Adapted from langchain-ai/langchain ``docs/docs/how_to/fallbacks.ipynb`` ("Fallback for LLM
API Errors": ``ChatOpenAI(max_retries=0).with_fallbacks([ChatAnthropic(...)])`` used as
``prompt | llm``, with OpenAI answering a rate limit; "Fallback for Sequences":
``bad_chain.with_fallbacks([good_chain])``) and langchain-ai/docs ``src/oss/models.mdx``
("Add model fallbacks"). The real ChatOpenAI and ChatAnthropic clients talk to the loopback
stub (tests/fake_provider_server.py): OpenAI answers HTTP 429, Anthropic answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langgraph.graph import END, START, StateGraph

from configurable_agents.names import Metric, Param, Tag
from tests.fake_provider_server import TEXT_PARTS, FakeProviderServer
from tests.realworld.harness import check, handler_for

langchain_openai = pytest.importorskip("langchain_openai")
langchain_anthropic = pytest.importorskip("langchain_anthropic")

HAIKU = "claude-3-haiku-20240307"
# What the notebook's Anthropic answer reported, and claude-3-haiku's list price.
ANTHROPIC_USAGE = {"input_tokens": 15, "output_tokens": 161}
CALL_COST = (15 * 0.25 + 161 * 1.25) / 1e6
REPLY = "".join(TEXT_PARTS)


@pytest.fixture(scope="module")
def stub() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer().start()
    server.openai_error = 429  # OpenAI is rate limited for the whole module
    server.anthropic_usage = ANTHROPIC_USAGE
    yield server
    server.stop()


def _llm(stub: FakeProviderServer) -> Any:
    # As the guide says: max_retries=0, or the first wrapper keeps retrying instead of failing.
    openai_llm = langchain_openai.ChatOpenAI(
        model="gpt-4o-mini", base_url=f"{stub.url}/v1", api_key="sk-test", max_retries=0
    )
    anthropic_llm = langchain_anthropic.ChatAnthropic(
        model=HAIKU, base_url=stub.url, api_key="sk-ant-test", max_retries=0
    )
    return openai_llm.with_fallbacks([anthropic_llm])


PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "You're a nice assistant who always includes a compliment in your response"),
        ("human", "Why did the {animal} cross the road"),
    ]
)


def test_prompt_pipe_fallbacks_at_the_root(stub, mlflow_store, experiment_name, mlflow_client):
    chain = PROMPT | _llm(stub)
    handler = handler_for(mlflow_store, experiment_name)

    out = chain.invoke({"animal": "kangaroo"}, {"callbacks": [handler]})

    assert out.content == REPLY
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=(15, 161),
                   cost=CALL_COST)
    parent = logged.parent
    assert parent.data.metrics[Metric.FALLBACK_COUNT] == 1
    assert parent.data.metrics[Metric.LLM_CALLS] == 2  # the rate-limited attempt is inside
    assert parent.data.tags[Tag.FALLBACK_MODEL] == HAIKU


class Story(TypedDict, total=False):
    animal: str
    draft: str
    review: str


def test_fallbacks_in_a_node_a_node_function_and_a_subgraph(
    stub, mlflow_store, experiment_name, mlflow_client
):
    llm = _llm(stub)
    chain = PROMPT | llm | StrOutputParser()

    def critic(state: Story) -> Story:  # a node function calling the chain itself
        return {"review": chain.invoke({"animal": state["animal"]})}

    review = StateGraph(Story)
    review.add_node("critic", critic)
    review.add_edge(START, "critic")
    graph = StateGraph(Story)
    graph.add_node("draft", PROMPT | llm | (lambda m: {"draft": m.content}))  # node = chain
    graph.add_node("review", review.compile())  # the fallback two levels down
    graph.add_edge(START, "draft")
    graph.add_edge("draft", "review")
    graph.add_edge("review", END)
    handler = handler_for(mlflow_store, experiment_name)

    out = graph.compile().invoke({"animal": "turtle"}, {"callbacks": [handler]})

    assert out == {"animal": "turtle", "draft": REPLY, "review": REPLY}
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=(30, 322),
                   cost=2 * CALL_COST)
    parent = logged.parent
    assert parent.data.metrics[Metric.FALLBACK_COUNT] == 2
    assert parent.data.metrics[Metric.LLM_CALLS] == 4
    assert parent.data.tags[Tag.FALLBACK_MODEL] == HAIKU
    assert logged.node_ids(parent) == ["critic", "draft", "review"]
    for run in logged.nested(parent):  # every node that fell back says who answered
        assert run.data.tags[Tag.FALLBACK_MODEL] == HAIKU
        assert run.data.params[Param.NODE_MODEL] == f"gpt-4o-mini,{HAIKU}"


def test_sequence_fallbacks_inside_a_node(stub, mlflow_store, experiment_name, mlflow_client):
    chat_model = langchain_openai.ChatOpenAI(
        model="gpt-fake", base_url=f"{stub.url}/v1", api_key="sk-test", max_retries=0
    )
    bad_chain = PROMPT | chat_model | StrOutputParser()
    good_chain = (
        ChatPromptTemplate.from_template(
            "Instructions: You should always include a compliment in your response.\n\n"
            "Question: Why did the {animal} cross the road?"
        )
        | langchain_anthropic.ChatAnthropic(
            model=HAIKU, base_url=stub.url, api_key="sk-ant-test", max_retries=0
        )
        | StrOutputParser()
    )
    chain = bad_chain.with_fallbacks([good_chain])
    graph = StateGraph(Story)
    graph.add_node("draft", lambda s: {"draft": chain.invoke({"animal": s["animal"]})})
    graph.add_edge(START, "draft")
    handler = handler_for(mlflow_store, experiment_name)

    out = graph.compile().invoke({"animal": "turtle"}, {"callbacks": [handler]})

    assert out["draft"] == REPLY
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=(15, 161),
                   cost=CALL_COST)
    assert logged.parent.data.metrics[Metric.FALLBACK_COUNT] == 1
    (draft,) = logged.nested(logged.parent)
    assert draft.data.tags[Tag.FALLBACK_MODEL] == HAIKU
