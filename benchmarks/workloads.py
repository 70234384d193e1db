"""The graphs the benchmarks invoke: real LangGraph apps over stateless fake chat models.

Each workload is built once and invoked many times with different callbacks, so the
graph construction never counts. Every model call reports usage, so the handler does
the same token and cost work it does in production.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph

from benchmarks.fakes import ToolCallingFakeModel, UsageFakeChatModel

ARTICLE_TEXT = (
    "Large language models need observability that is cheap enough to leave on in production "
    "and precise enough to compare runs"
)
METADATA = {"user_id": "bench-user", "team": "benchmarks"}


@dataclass(slots=True)
class Workload:
    """A compiled app and how to call it once with a list of callbacks."""

    name: str
    description: str
    nodes: int
    app: Any
    inputs: dict[str, Any]
    stream: bool = False
    recursion_limit: int = 25

    def invoke(self, callbacks: list[Any]) -> Any:
        config: dict[str, Any] = {
            "callbacks": callbacks,
            "metadata": dict(METADATA),
            "recursion_limit": self.recursion_limit,
        }
        if self.stream:
            return list(self.app.stream(self.inputs, config=config, stream_mode="messages"))
        return self.app.invoke(self.inputs, config=config)


class ArticleState(TypedDict, total=False):
    topic: str
    research: str
    article: str


def article_writer(*, stream: bool = False) -> Workload:
    """The seed's 2-node graph: research, then write through a prompt template."""
    model = UsageFakeChatModel(text=ARTICLE_TEXT, input_tokens=1000, output_tokens=500)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You write articles."), ("human", "Write about {topic} using {research}")]
    )
    chain = prompt | model

    def research(state: ArticleState) -> dict[str, str]:
        return {"research": str(model.invoke(f"Research {state['topic']}").content)}

    def write(state: ArticleState) -> dict[str, str]:
        return {"article": str(chain.invoke(dict(state)).content)}

    graph = StateGraph(ArticleState)
    graph.add_node("research", research)
    graph.add_node("write", write)
    graph.add_edge(START, "research")
    graph.add_edge("research", "write")
    graph.add_edge("write", END)
    return Workload(
        name="article_writer_stream" if stream else "article_writer",
        description="2-node article writer"
        + (" streamed (stream_mode='messages', ~40 tokens per call)" if stream else ""),
        nodes=2,
        app=graph.compile(),
        inputs={"topic": "AI Safety"},
        stream=stream,
    )


class ChainState(TypedDict):
    text: str
    steps: int


def sequential_chain(length: int) -> Workload:
    """``length`` nodes in a line, one model call each: the scaling workload."""
    model = UsageFakeChatModel(text="step done", input_tokens=200, output_tokens=20)

    def make_step(index: int) -> Callable[[ChainState], dict[str, Any]]:
        def step(state: ChainState) -> dict[str, Any]:
            reply = model.invoke(f"Step {index}: continue from {state['text'][:40]}")
            return {"text": str(reply.content), "steps": state["steps"] + 1}

        return step

    graph = StateGraph(ChainState)
    previous = START
    for index in range(length):
        name = f"step_{index:04d}"
        graph.add_node(name, make_step(index))
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return Workload(
        name=f"chain_{length}",
        description=f"{length}-node sequential chain",
        nodes=length,
        app=graph.compile(),
        inputs={"text": "start", "steps": 0},
        recursion_limit=length + 10,
    )


class FanState(TypedDict, total=False):
    topic: str
    parts: Annotated[list[str], operator.add]
    summary: str


def parallel_fan_out(width: int = 10) -> Workload:
    """``width`` nodes in one superstep (LangGraph runs them on its thread pool), then a join."""
    model = UsageFakeChatModel(text="part done", input_tokens=300, output_tokens=40)

    def make_branch(index: int) -> Callable[[FanState], dict[str, Any]]:
        def branch(state: FanState) -> dict[str, Any]:
            return {"parts": [str(model.invoke(f"Part {index} of {state['topic']}").content)]}

        return branch

    def join(state: FanState) -> dict[str, Any]:
        return {"summary": str(model.invoke(" / ".join(state["parts"])).content)}

    graph = StateGraph(FanState)
    for index in range(width):
        name = f"branch_{index:02d}"
        graph.add_node(name, make_branch(index))
        graph.add_edge(START, name)
        graph.add_edge(name, "join")
    graph.add_node("join", join)
    graph.add_edge("join", END)
    return Workload(
        name=f"fan_out_{width}",
        description=f"{width}-way parallel fan-out + join",
        nodes=width + 1,
        app=graph.compile(),
        inputs={"topic": "observability"},
    )


@tool
def search(query: str) -> str:
    """Look something up (a constant answer: the benchmark measures the callbacks)."""
    return f"results for {query}"


def react_agent(tool_calls: int = 5) -> Workload:
    """LangGraph's prebuilt ReAct agent making ``tool_calls`` tool calls, then answering."""
    from langgraph.prebuilt import create_react_agent

    model = ToolCallingFakeModel(calls=tool_calls, tool_name="search")
    app = create_react_agent(model, [search])
    return Workload(
        name=f"react_agent_{tool_calls}_tools",
        description=f"prebuilt ReAct agent, {tool_calls} tool calls",
        nodes=2 * tool_calls + 1,
        app=app,
        inputs={"messages": [("user", "What is new in observability?")]},
    )


def standard_workloads() -> list[Workload]:
    """The five workloads of the latency benchmark (issue #8)."""
    return [
        article_writer(),
        sequential_chain(20),
        parallel_fan_out(10),
        react_agent(5),
        article_writer(stream=True),
    ]
