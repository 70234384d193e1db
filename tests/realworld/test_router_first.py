"""A router-first graph: an LLM router as the conditional entry point (no router node).

Adapted from langchain-ai/docs ``src/oss/agentic-architectures.mdx`` ("Router": ``Route``
structured output picking story / joke / poem, three ``llm_call_N`` nodes) with the routing
moved onto the edge from START as ``src/oss/graph-api.mdx`` ("Conditional Entry Point":
``add_conditional_edges(START, routing_function, {...})``) shows. LangGraph runs that edge as
its hidden ``__start__`` task: the router's model call counts, but it is no node run.
"""

from __future__ import annotations

import asyncio
from typing import Literal, TypedDict

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel, Field

from configurable_agents.names import Metric, Param
from tests.realworld.harness import ReportingModel, check, handler_for, tool_call


class Route(BaseModel):
    step: Literal["poem", "story", "joke"] = Field(
        None, description="The next step in the routing process"
    )


class State(TypedDict, total=False):
    input: str
    output: str


def _router_workflow(router_llm: ReportingModel, llm: ReportingModel) -> StateGraph:
    router = router_llm.with_structured_output(Route)

    def llm_call_1(state: State) -> State:
        """Write a story."""
        return {"output": llm.invoke(state["input"]).content}

    def llm_call_2(state: State) -> State:
        """Write a joke."""
        return {"output": llm.invoke(state["input"]).content}

    def llm_call_3(state: State) -> State:
        """Write a poem."""
        return {"output": llm.invoke(state["input"]).content}

    def route_decision(state: State) -> str:
        decision = router.invoke([
            SystemMessage("Route the input to story, joke, or poem based on the user's request."),
            HumanMessage(state["input"]),
        ])
        return {"story": "llm_call_1", "joke": "llm_call_2", "poem": "llm_call_3"}[decision.step]

    builder = StateGraph(State)
    builder.add_node("llm_call_1", llm_call_1)
    builder.add_node("llm_call_2", llm_call_2)
    builder.add_node("llm_call_3", llm_call_3)
    builder.add_conditional_edges(
        START, route_decision,
        {"llm_call_1": "llm_call_1", "llm_call_2": "llm_call_2", "llm_call_3": "llm_call_3"},
    )
    for node in ("llm_call_1", "llm_call_2", "llm_call_3"):
        builder.add_edge(node, END)
    return builder


def _models() -> tuple[ReportingModel, ReportingModel]:
    router_llm = ReportingModel(script=[tool_call("Route", {"step": "joke"}, "call_r", 55, 7)])
    llm = ReportingModel(script=["Why did the cat sit on the computer? To watch the mouse."])
    return router_llm, llm


def _tokens(*models: ReportingModel) -> tuple[int, int]:
    return (sum(m.reported[0] for m in models), sum(m.reported[1] for m in models))


def test_router_first_graph_has_no_start_node(mlflow_store, experiment_name, mlflow_client):
    router_llm, llm = _models()
    workflow = _router_workflow(router_llm, llm).compile()
    handler = handler_for(mlflow_store, experiment_name)

    state = workflow.invoke({"input": "Write me a joke about cats"}, {"callbacks": [handler]})

    assert state["output"].startswith("Why did the cat")
    logged = check(mlflow_client, experiment_name, handler, calls=1,
                   tokens=_tokens(router_llm, llm))
    parent = logged.parent
    assert logged.node_ids(parent) == ["llm_call_2"]
    assert parent.data.metrics[Metric.NODE_COUNT] == 1
    assert parent.data.metrics[Metric.LLM_CALLS] == 2  # the router's call counts on the parent
    (joke,) = logged.nested(parent)
    assert joke.data.metrics[Metric.LLM_CALLS] == 1


def test_router_first_subgraph_async(mlflow_store, experiment_name, mlflow_client):
    router_llm, llm = _models()
    outer = StateGraph(State)
    outer.add_node("writer", _router_workflow(router_llm, llm).compile())
    outer.add_edge(START, "writer")
    app = outer.compile()
    handler = handler_for(mlflow_store, experiment_name)

    state = asyncio.run(
        app.ainvoke({"input": "Write me a joke about cats"}, {"callbacks": [handler]})
    )

    assert state["output"].startswith("Why did the cat")
    logged = check(mlflow_client, experiment_name, handler, calls=1,
                   tokens=_tokens(router_llm, llm))
    parent = logged.parent
    assert logged.node_ids(parent) == ["llm_call_2", "writer"]
    (writer,) = logged.children_of[parent.info.run_id]
    # The subgraph's router ran inside the writer node: its call is the writer's.
    assert writer.data.metrics[Metric.LLM_CALLS] == 2
    assert writer.data.metrics[Metric.INPUT_TOKENS] == router_llm.reported[0] + llm.reported[0]
    assert all(r.data.params[Param.NODE_ID] != "__start__" for r in logged.nodes)
