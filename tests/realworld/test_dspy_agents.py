"""DSPy agents: ``dspy.ReAct`` with tools run as a program, sync and async (``acall``).

Adapted from stanfordnlp/dspy ``docs/docs/tutorials/agents/index.ipynb`` (a ReAct agent
with ``search_wikipedia`` / ``lookup_wikipedia`` tools over a ``claim -> titles: list[str]``
signature; the ColBERT search is replaced by a local page table), ``tests/predict/test_react.py``
(a tool call, then ``finish``, then the extraction) and ``docs/docs/tutorials/async/index.md``
(``acall`` on built-in modules; ReAct's tools run through ``Tool.acall``); the agent also runs
inside a LangGraph node. A real ``dspy.LM`` (LiteLLM) talks to the loopback OpenAI stub,
which answers in DSPy's ChatAdapter format.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from langgraph.graph import START, StateGraph

from configurable_agents.names import Metric, Param, Tag
from tests.dspy_stub import COST_PER_CALL, USAGE
from tests.fake_provider_server import FakeProviderServer
from tests.realworld.harness import check, handler_for

dspy = pytest.importorskip("dspy")
from configurable_agents.observability.dspy_tracking import MLflowDSPyCallback  # noqa: E402

PAGES = {
    "David Gregory (physician)": "David Gregory (1625 - 1720) was a Scottish physician.",
    "Gregory baronets": "Two baronetcies were created for persons with the surname Gregory.",
}


def search_wikipedia(query: str) -> list[str]:
    """Returns top-5 results and then the titles of the top-5 to top-30 results."""
    return [f"{title} | {text}" for title, text in PAGES.items() if query.split()[0] in title]


def lookup_wikipedia(title: str) -> str:
    """Returns the text of the Wikipedia page, if it exists."""
    return PAGES.get(title, f"No Wikipedia page found for title: {title}")


def _block(**fields: Any) -> str:
    parts = [f"[[ ## {k} ## ]]\n{v if isinstance(v, str) else json.dumps(v)}"
             for k, v in fields.items()]
    return "\n\n".join([*parts, "[[ ## completed ## ]]"])


def react_reply(body: dict[str, Any]) -> str:
    """The agent's next step, read from the request: search, look up, finish, then extract."""
    messages = body.get("messages") or []
    system, last = str(messages[0].get("content")), str(messages[-1].get("content"))
    if "next_tool_name" not in system:  # the extraction (ChainOfThought) after the loop
        return _block(reasoning="The lookup confirms it.", titles=["David Gregory (physician)"])
    if "observation_0" not in last:
        return _block(next_thought="Search first.", next_tool_name="search_wikipedia",
                      next_tool_args={"query": "David Gregory"})
    if "observation_1" not in last:
        return _block(next_thought="Read the page.", next_tool_name="lookup_wikipedia",
                      next_tool_args={"title": "David Gregory (physician)"})
    return _block(next_thought="Done.", next_tool_name="finish", next_tool_args={})


@pytest.fixture(scope="module")
def stub() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer().start()
    server.openai_usage = USAGE
    server.openai_reply = react_reply
    yield server
    server.stop()


def _react() -> Any:
    instructions = "Find all Wikipedia titles relevant to verifying (or refuting) the claim."
    signature = dspy.Signature("claim -> titles: list[str]", instructions)
    return dspy.ReAct(signature, tools=[search_wikipedia, lookup_wikipedia], max_iters=20)


def _lm(stub: FakeProviderServer) -> Any:
    return dspy.LM("openai/gpt-4o", api_base=f"{stub.url}/v1", api_key="sk-test", cache=False)


# Three agent steps (search, lookup, finish) and one extraction: four LM calls per claim.
CALLS = 4
TOOLS = '["finish", "lookup_wikipedia", "search_wikipedia"]'


def test_react_program_lists_its_tools(stub, mlflow_store, experiment_name, mlflow_client):
    handler = handler_for(mlflow_store, experiment_name)
    callback = MLflowDSPyCallback(handler=handler)
    react = _react()

    with dspy.context(lm=_lm(stub), callbacks=[callback]):
        prediction = react(claim="David Gregory was born in 1625.")

    assert prediction.titles == ["David Gregory (physician)"]
    assert [prediction.trajectory[f"tool_name_{i}"] for i in range(3)] == [
        "search_wikipedia", "lookup_wikipedia", "finish",
    ]
    logged = check(mlflow_client, experiment_name, handler, calls=1,
                   tokens=(CALLS * USAGE["prompt_tokens"], CALLS * USAGE["completion_tokens"]),
                   cost=CALLS * COST_PER_CALL)
    parent = logged.parent
    assert parent.data.tags[Tag.ROOT_KIND] == "dspy"
    assert parent.data.metrics[Metric.LLM_CALLS] == CALLS
    # The tools ReAct called are on its module's run: the program's parent run.
    assert parent.data.params[Param.TOOLS] == TOOLS
    # Its predictors: three agent steps, then ChainOfThought's predict inside extract.
    assert logged.node_ids(parent) == ["extract", "extract.predict", "react", "react", "react"]
    assert all(r.data.params[Param.TOOLS] == "[]" for r in logged.nested(parent))
    callback.close()


class Verifier(dspy.Module):
    """A program holding the agent as a sub-module: the tools go on the agent's run."""

    def __init__(self) -> None:
        super().__init__()
        self.agent = _react()

    def forward(self, claim: str) -> Any:
        return self.agent(claim=claim)

    async def aforward(self, claim: str) -> Any:
        return await self.agent.acall(claim=claim)


def test_async_react_acall_gathered(stub, mlflow_store, experiment_name, mlflow_client):
    handler = handler_for(mlflow_store, experiment_name)
    callback = MLflowDSPyCallback(handler=handler)
    verifier = Verifier()
    claims = [f"David Gregory was born in {1620 + i}." for i in range(4)]

    async def main() -> list[Any]:
        with dspy.context(lm=_lm(stub), callbacks=[callback]):
            return await asyncio.gather(*(verifier.acall(claim=c) for c in claims))

    predictions = asyncio.run(main())

    assert [p.titles for p in predictions] == [["David Gregory (physician)"]] * 4
    n = len(claims) * CALLS
    logged = check(mlflow_client, experiment_name, handler, calls=len(claims),
                   tokens=(n * USAGE["prompt_tokens"], n * USAGE["completion_tokens"]),
                   cost=n * COST_PER_CALL)
    for parent in logged.parents:  # four parents, never mixed: each holds one agent
        assert parent.data.params[Param.WORKFLOW_NAME] == "Verifier"
        assert parent.data.metrics[Metric.LLM_CALLS] == CALLS
        assert parent.data.metrics[Metric.NODE_COUNT] == 6
        (agent,) = logged.children_of[parent.info.run_id]
        assert agent.data.params[Param.NODE_ID] == "agent"
        assert agent.data.params[Param.TOOLS] == TOOLS
    callback.close()


class Claim(TypedDict, total=False):
    claim: str
    titles: list[str]


def test_react_inside_a_langgraph_node(stub, mlflow_store, experiment_name, mlflow_client):
    handler = handler_for(mlflow_store, experiment_name)
    callback = MLflowDSPyCallback(handler=handler)
    react, lm = _react(), _lm(stub)

    def verify(state: Claim) -> Claim:
        with dspy.context(lm=lm, callbacks=[callback]):
            return {"titles": react(claim=state["claim"]).titles}

    graph = StateGraph(Claim)
    graph.add_node("verify", verify)
    graph.add_edge(START, "verify")

    out = graph.compile().invoke({"claim": "David Gregory was born in 1625."},
                                 {"callbacks": [handler]})

    assert out["titles"] == ["David Gregory (physician)"]
    logged = check(mlflow_client, experiment_name, handler, calls=1,
                   tokens=(CALLS * USAGE["prompt_tokens"], CALLS * USAGE["completion_tokens"]),
                   cost=CALLS * COST_PER_CALL)
    # The agent's calls and tools land on the node that ran it: one run, counted once.
    (node,) = logged.nested(logged.parent)
    assert node.data.params[Param.NODE_ID] == "verify"
    assert node.data.params[Param.TOOLS] == TOOLS
    assert node.data.metrics[Metric.LLM_CALLS] == CALLS
    assert Param.TOOLS not in logged.parent.data.params  # the graph has a node layer
    callback.close()
