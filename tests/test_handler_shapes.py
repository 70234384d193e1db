"""The run layout users see in MLflow, for every graph shape (real LangGraph, real sqlite store)."""

import json
import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from configurable_agents.config import MLFlowConfig
from configurable_agents.observability import MLflowCallbackHandler
from tests.fakes import ScriptedToolModel, repeating


def make_handler(store: str, experiment: str, **kwargs: Any) -> MLflowCallbackHandler:
    config_fields = {k: kwargs.pop(k) for k in list(kwargs) if k in MLFlowConfig.model_fields}
    config = MLFlowConfig(
        enabled=True, tracking_uri=store, experiment_name=experiment, **config_fields
    )
    return MLflowCallbackHandler(config, **kwargs)


def runs_of(client: MlflowClient, experiment: str) -> tuple[list[Run], list[Run]]:
    """(parent runs, node runs) of an experiment."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, "experiment was not created"
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if r.data.tags.get("configurable_agents.kind") == "workflow"]
    nodes = [r for r in runs if r.data.tags.get("configurable_agents.kind") == "node"]
    return parents, nodes


def children(nodes: list[Run], parent: Run) -> dict[str, Run]:
    return {
        r.data.params["node_id"]: r
        for r in nodes
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }


def artifact_text(client: MlflowClient, run: Run, path: str) -> str:
    local = client.download_artifacts(run.info.run_id, path)
    with open(local, encoding="utf-8") as fh:
        return fh.read()


class ArticleState(TypedDict, total=False):
    topic: str
    research: str
    article: str


def article_writer(model: Any) -> Any:
    def research(state: ArticleState) -> dict[str, str]:
        return {"research": model.invoke(f"Research {state['topic']}").content}

    def write(state: ArticleState) -> dict[str, str]:
        prompt = ChatPromptTemplate.from_messages(
            [("system", "You write articles."), ("human", "Write about {topic} using {research}")]
        )
        return {"article": (prompt | model).invoke(dict(state)).content}

    graph = StateGraph(ArticleState)
    graph.add_node("research", research)
    graph.add_node("write", write)
    graph.add_edge(START, "research")
    graph.add_edge("research", "write")
    graph.add_edge("write", END)
    return graph.compile()


def test_sequential_graph_parent_and_nested_runs(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(
        mlflow_store, experiment_name, workflow_name="article_writer", workflow_version="1.0.0"
    )
    app = article_writer(repeating("text", 1000, 500))
    root_id = uuid.uuid4()
    result = app.invoke(
        {"topic": "AI Safety"},
        config={
            "callbacks": [handler],
            "run_id": root_id,
            "metadata": {"user_id": "alice@corp.com", "team": "data-science", "cost_center": "R&D"},
        },
    )
    assert result == {"topic": "AI Safety", "research": "text", "article": "text"}
    assert handler.flush(60)

    parents, nodes = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 1 and len(nodes) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == f"article_writer v1.0.0 {root_id.hex[-8:]}"
    assert parent.data.tags["langchain_run_id"] == str(root_id)
    assert handler.run_id_for(root_id) == parent.info.run_id
    assert parent.data.params["workflow_name"] == "article_writer"
    assert parent.data.params["workflow_version"] == "1.0.0"
    assert parent.data.params["global_model"] == "gemini-2.5-flash"
    assert parent.data.params["global_temperature"] == "0.7"
    m = parent.data.metrics
    assert m["total_input_tokens"] == 2000
    assert m["total_output_tokens"] == 1000
    # gemini-2.5-flash: $0.30 / 1M input, $2.50 / 1M output -> 2 x 0.00155
    assert m["total_cost_usd"] == pytest.approx(0.0031)
    assert m["node_count"] == 2
    assert m["retry_count"] == 0
    assert m["status"] == 1
    assert m["duration_seconds"] > 0
    assert parent.info.end_time >= parent.info.start_time
    for key, value in {
        "user_id": "alice@corp.com",
        "team": "data-science",
        "cost_center": "R&D",
    }.items():
        assert parent.data.tags[key] == value
    assert json.loads(artifact_text(mlflow_client, parent, "inputs.json")) == {"topic": "AI Safety"}
    assert json.loads(artifact_text(mlflow_client, parent, "outputs.json"))["article"] == "text"

    by_id = children(nodes, parent)
    assert set(by_id) == {"research", "write"}
    write = by_id["write"]
    assert write.info.run_name == "node_write"
    assert write.info.status == "FINISHED"
    assert write.data.params == {
        "node_id": "write",
        "node_model": "gemini-2.5-flash",
        "tools": "[]",
    }
    assert write.data.metrics["input_tokens"] == 1000
    assert write.data.metrics["output_tokens"] == 500
    assert write.data.metrics["cost_usd"] == pytest.approx(0.00155)
    assert write.data.metrics["retries"] == 0
    assert write.data.metrics["llm_calls"] == 1
    assert write.data.metrics["node_duration_ms"] >= 0
    # Nested runs inherit attribution so node searches can filter by user.
    assert write.data.tags["user_id"] == "alice@corp.com"
    prompt = artifact_text(mlflow_client, write, "prompt.txt")
    assert prompt == "[system]\nYou write articles.\n\n[human]\nWrite about AI Safety using text"
    assert artifact_text(mlflow_client, write, "response.txt") == "[ai]\ntext"
    assert handler.stats().active_runs == 0
    handler.close()


def fan_out_app() -> Any:
    """Two parallel branches; one fans out to three `worker` tasks with Send."""
    class State(TypedDict, total=False):
        items: list[str]
        results: Annotated[list[str], operator.add]

    model = repeating("done", 10, 5)

    def branch_a(state: State) -> dict[str, list[str]]:
        return {"results": [model.invoke("a").content]}

    def branch_b(state: State) -> dict[str, list[str]]:
        return {"results": [model.invoke("b").content]}

    def worker(item: dict[str, str]) -> dict[str, list[str]]:
        return {"results": [model.invoke(item["item"]).content]}

    def fan_out(state: State) -> list[Send]:
        return [Send("worker", {"item": i}) for i in state["items"]]

    graph = StateGraph(State)
    graph.add_node("branch_a", branch_a)
    graph.add_node("branch_b", branch_b)
    graph.add_node("worker", worker)
    graph.add_edge(START, "branch_a")
    graph.add_edge(START, "branch_b")
    graph.add_conditional_edges("branch_a", fan_out, ["worker"])
    graph.add_edge("branch_b", END)
    graph.add_edge("worker", END)
    return graph.compile()


def test_parallel_fan_out_and_send(mlflow_store, experiment_name, mlflow_client):
    app = fan_out_app()

    handler = make_handler(mlflow_store, experiment_name)
    out = app.invoke({"items": ["x", "y", "z"]}, config={"callbacks": [handler]})
    assert len(out["results"]) == 5
    assert handler.flush(60)
    parents, nodes = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 1
    ids = sorted(r.data.params["node_id"] for r in nodes)
    assert ids == ["branch_a", "branch_b", "worker", "worker", "worker"]
    assert parents[0].data.metrics["node_count"] == 5
    assert parents[0].data.metrics["total_input_tokens"] == 50
    assert all(n.data.metrics["input_tokens"] == 10 for n in nodes)


def test_subgraph_nodes_nest_one_level_deeper(mlflow_store, experiment_name, mlflow_client):
    class State(TypedDict, total=False):
        text: str

    model = repeating("sub", 7, 3)

    def inner_one(state: State) -> State:
        return {"text": model.invoke("one").content}

    def inner_two(state: State) -> State:
        return {"text": state["text"] + model.invoke("two").content}

    sub = StateGraph(State)
    sub.add_node("inner_one", inner_one)
    sub.add_node("inner_two", inner_two)
    sub.add_edge(START, "inner_one")
    sub.add_edge("inner_one", "inner_two")
    sub.add_edge("inner_two", END)

    def prepare(state: State) -> State:
        return {"text": "p"}

    outer = StateGraph(State)
    outer.add_node("prepare", prepare)
    outer.add_node("summarise", sub.compile())
    outer.add_edge(START, "prepare")
    outer.add_edge("prepare", "summarise")
    outer.add_edge("summarise", END)

    handler = make_handler(mlflow_store, experiment_name)
    assert outer.compile().invoke({"text": ""}, config={"callbacks": [handler]}) == {
        "text": "subsub"
    }
    assert handler.flush(60)
    parents, nodes = runs_of(mlflow_client, experiment_name)
    parent = parents[0]
    top = children(nodes, parent)
    assert set(top) == {"prepare", "summarise"}
    inner = children(nodes, top["summarise"])
    assert set(inner) == {"inner_one", "inner_two"}
    # The subgraph node's metrics include its children's calls, counted once at the top.
    assert top["summarise"].data.metrics["input_tokens"] == 14
    assert inner["inner_two"].data.metrics["input_tokens"] == 7
    assert parent.data.metrics["total_input_tokens"] == 14
    assert parent.data.metrics["node_count"] == 4


def test_node_calling_model_several_times_numbers_responses(
    mlflow_store, experiment_name, mlflow_client
):
    class State(TypedDict, total=False):
        drafts: list[str]

    model = repeating("draft", 20, 10)

    def refine(state: State) -> State:
        return {"drafts": [model.invoke([HumanMessage(f"draft {i}")]).content for i in range(3)]}

    graph = StateGraph(State)
    graph.add_node("refine", refine)
    graph.add_edge(START, "refine")
    graph.add_edge("refine", END)
    handler = make_handler(mlflow_store, experiment_name)
    graph.compile().invoke({}, config={"callbacks": [handler]})
    assert handler.flush(60)
    _, nodes = runs_of(mlflow_client, experiment_name)
    (node,) = nodes
    assert node.data.metrics["llm_calls"] == 3
    assert node.data.metrics["input_tokens"] == 60
    response = artifact_text(mlflow_client, node, "response.txt")
    assert "=== call 1 (gemini-2.5-flash) ===" in response
    assert "=== call 3 (gemini-2.5-flash) ===" in response
    prompt = artifact_text(mlflow_client, node, "prompt.txt")
    assert "[human]\ndraft 2" in prompt


def test_react_agent_lists_bound_tools(mlflow_store, experiment_name, mlflow_client):
    from langgraph.prebuilt import create_react_agent

    @tool
    def search(query: str) -> str:
        """Search the web."""
        return f"results for {query}"

    @tool
    def calculator(expression: str) -> str:
        """Evaluate arithmetic."""
        return "4"

    model = ScriptedToolModel(tool_name="search", calls=2, model_name="gpt-4o-mini")
    agent = create_react_agent(model, [search, calculator])
    handler = make_handler(mlflow_store, experiment_name, workflow_name="react")
    out = agent.invoke({"messages": [("human", "find things")]}, config={"callbacks": [handler]})
    assert out["messages"][-1].content == "final answer"
    assert handler.flush(60)
    parents, nodes = runs_of(mlflow_client, experiment_name)
    agent_runs = [n for n in nodes if n.data.params["node_id"] == "agent"]
    tool_runs = [n for n in nodes if n.data.params["node_id"] == "tools"]
    assert len(agent_runs) == 3 and len(tool_runs) == 2
    assert json.loads(agent_runs[0].data.params["tools"]) == ["calculator", "search"]
    assert json.loads(tool_runs[0].data.params["tools"]) == ["search"]
    assert parents[0].data.metrics["llm_calls"] == 3
    assert parents[0].data.metrics["total_input_tokens"] == 80 + 81 + 120
    assert parents[0].data.params["global_model"] == "gpt-4o-mini"


def test_plain_lcel_chain_has_no_node_layer(mlflow_store, experiment_name, mlflow_client):
    prompt = ChatPromptTemplate.from_messages([("human", "Tell me about {topic}")])
    chain = prompt | repeating("facts", 30, 12)
    handler = make_handler(mlflow_store, experiment_name)
    assert chain.invoke({"topic": "owls"}, config={"callbacks": [handler]}).content == "facts"
    assert handler.flush(60)
    parents, nodes = runs_of(mlflow_client, experiment_name)
    assert nodes == []
    (parent,) = parents
    assert parent.data.params["workflow_name"] == "RunnableSequence"
    assert parent.data.metrics["total_input_tokens"] == 30
    assert parent.data.metrics["node_count"] == 0
    assert parent.data.metrics["llm_calls"] == 1
    assert artifact_text(mlflow_client, parent, "prompt.txt") == "[human]\nTell me about owls"
    assert artifact_text(mlflow_client, parent, "response.txt") == "[ai]\nfacts"


def test_bare_model_call_is_one_parent_run(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(mlflow_store, experiment_name)
    model = repeating("hi", 11, 4, model="claude-sonnet-4-20250514")
    model.invoke("hello", config={"callbacks": [handler]})
    assert handler.flush(60)
    parents, nodes = runs_of(mlflow_client, experiment_name)
    assert nodes == []
    (parent,) = parents
    assert parent.data.tags["configurable_agents.root_kind"] == "llm"
    assert parent.data.params["global_model"] == "claude-sonnet-4-20250514"
    assert parent.data.metrics["total_output_tokens"] == 4
    assert parent.data.metrics["total_cost_usd"] > 0


def test_streaming_records_time_to_first_token(mlflow_store, experiment_name, mlflow_client):
    class State(TypedDict, total=False):
        text: str

    model = repeating("one two three four", 9, 4)

    def speak(state: State) -> State:
        return {"text": "".join(chunk.content for chunk in model.stream("go"))}

    graph = StateGraph(State)
    graph.add_node("speak", speak)
    graph.add_edge(START, "speak")
    graph.add_edge("speak", END)
    handler = make_handler(mlflow_store, experiment_name)
    assert graph.compile().invoke({}, config={"callbacks": [handler]}) == {
        "text": "one two three four"
    }
    assert handler.flush(60)
    _, (node,) = runs_of(mlflow_client, experiment_name)
    assert node.data.metrics["time_to_first_token_ms"] >= 0
    # Usage arrives once in the stream: never summed per chunk.
    assert node.data.metrics["input_tokens"] == 9
    assert node.data.metrics["output_tokens"] == 4


def test_stream_without_usage_is_estimated_and_tagged(mlflow_store, experiment_name, mlflow_client):
    model = repeating("one two three four", 9, 4)
    model.stream_usage = False
    handler = make_handler(mlflow_store, experiment_name)
    assert "".join(c.content for c in model.stream("go", config={"callbacks": [handler]}))
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    assert parent.data.tags["tokens_estimated"] == "true"
    assert parent.data.metrics["total_output_tokens"] > 0
    assert parent.data.metrics["total_input_tokens"] > 0


def test_llm_cache_hit_costs_nothing_and_the_paid_call_keeps_its_cost(
    mlflow_store, experiment_name, mlflow_client
):
    from langchain_core.caches import InMemoryCache

    model = repeating("cached", 1000, 500)
    model.cache = InMemoryCache()
    handler = make_handler(mlflow_store, experiment_name)
    for _ in range(2):
        model.invoke("same prompt", config={"callbacks": [handler]})
    assert handler.flush(60)
    parents, _ = runs_of(mlflow_client, experiment_name)
    (hit,) = [p for p in parents if p.data.tags.get("llm_cache_hit") == "true"]
    (paid,) = [p for p in parents if p is not hit]
    assert paid.data.metrics["total_cost_usd"] == pytest.approx(0.00155)
    assert "llm_cache_hit" not in paid.data.tags
    assert hit.data.metrics["total_cost_usd"] == 0
    assert hit.data.tags["llm_cache_hit"] == "true"
