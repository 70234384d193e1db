"""DSPy programs through the same pipeline: real DSPy, real dspy.LM over the loopback OpenAI stub.

LiteLLM's real request and usage path runs with ``engine="litellm"``; DSPy's native
(lm15) engine is checked too. Every test reads back a real sqlite MLflow store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from mlflow.tracking import MlflowClient

from configurable_agents.config import MLFlowConfig
from configurable_agents.names import Metric, Param, Tag
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.dspy_tracking import MLflowDSPyCallback
from tests.dspy_stub import COST_PER_CALL, USAGE, CapitalQA, exact_answer, qa_examples, reply
from tests.fake_provider_server import FakeProviderServer
from tests.test_handler_shapes import children, runs_of

import dspy  # isort: skip  (after tests.dspy_stub set LITELLM_LOCAL_MODEL_COST_MAP)


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer().start()
    server.openai_usage = USAGE
    server.openai_reply = reply
    yield server
    server.stop()


def make_lm(provider: FakeProviderServer, engine: str = "litellm") -> dspy.LM:
    return dspy.LM(
        "openai/gpt-4o", api_base=f"{provider.url}/v1", api_key="sk-test", cache=False,
        engine=engine,
    )


def make_callback(store: str, experiment: str, **kwargs: Any) -> MLflowDSPyCallback:
    config = MLFlowConfig(enabled=True, tracking_uri=store, experiment_name=experiment)
    return MLflowDSPyCallback(config, **kwargs)


@pytest.mark.parametrize("engine", ["litellm", "lm15"])
def test_program_call_is_one_parent_with_a_nested_run_per_predictor(
    provider: FakeProviderServer, mlflow_store: str, mlflow_client: MlflowClient,
    experiment_name: str, engine: str,
) -> None:
    callback = make_callback(mlflow_store, experiment_name, metadata={"user_id": "u-7"})
    program = CapitalQA()
    with dspy.context(lm=make_lm(provider, engine), callbacks=[callback]):
        prediction = program(question="What is the capital of France?")
    assert prediction.answer == "unknown"  # the app's result is untouched (no demos yet)
    assert callback.flush(30)

    parents, nodes = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.params[Param.WORKFLOW_NAME] == "CapitalQA"
    assert parent.data.params[Param.GLOBAL_MODEL] == "gpt-4o"
    assert parent.data.tags[Tag.ROOT_KIND] == "dspy"
    assert parent.data.tags[Tag.USER_ID] == "u-7"
    metrics = parent.data.metrics
    assert metrics[Metric.LLM_CALLS] == 2
    assert metrics[Metric.TOTAL_INPUT_TOKENS] == 240
    assert metrics[Metric.TOTAL_OUTPUT_TOKENS] == 60
    assert metrics[Metric.TOTAL_CACHED_INPUT_TOKENS] == 40
    assert metrics[Metric.TOTAL_REASONING_TOKENS] == 20
    assert metrics[Metric.TOTAL_COST_USD] == pytest.approx(2 * COST_PER_CALL, abs=1e-12)
    assert Tag.TOKENS_ESTIMATED not in parent.data.tags
    assert Tag.PRICING not in parent.data.tags

    by_name = children(nodes, parent)
    assert set(by_name) == {"draft", "answer"}
    answer = by_name["answer"]
    assert answer.data.metrics[Metric.INPUT_TOKENS] == 120
    assert answer.data.metrics[Metric.COST_USD] == pytest.approx(COST_PER_CALL, abs=1e-12)
    files = {f.path for f in mlflow_client.list_artifacts(answer.info.run_id)}
    assert {"prompt.txt", "response.txt"} <= files
    prompt = mlflow_client.download_artifacts(answer.info.run_id, "prompt.txt")
    with open(prompt, encoding="utf-8") as fh:
        assert "capital of France" in fh.read()
    callback.close()


def test_dspy_cache_hit_costs_nothing(
    provider: FakeProviderServer, mlflow_store: str, mlflow_client: MlflowClient,
    experiment_name: str, tmp_path: Any,
) -> None:
    callback = make_callback(mlflow_store, experiment_name)
    lm = dspy.LM("openai/gpt-4o", api_base=f"{provider.url}/v1", api_key="sk-test",
                 cache=True, engine="litellm")
    predict = dspy.Predict("question -> answer")
    question = f"What is the capital of Peru? ({experiment_name})"  # unique: first call misses
    with dspy.context(lm=lm, callbacks=[callback]):
        predict(question=question)
        predict(question=question)
    assert callback.flush(30)
    parents, _ = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 2
    costs = sorted(p.data.metrics[Metric.TOTAL_COST_USD] for p in parents)
    assert costs == [0.0, pytest.approx(COST_PER_CALL, abs=1e-12)]
    hit = next(p for p in parents if p.data.metrics[Metric.TOTAL_COST_USD] == 0.0)
    assert hit.data.tags[Tag.LLM_CACHE_HIT] == "true"
    callback.close()


def test_parallel_evaluate_one_run_with_a_nested_run_per_example(
    provider: FakeProviderServer, mlflow_store: str, mlflow_client: MlflowClient,
    experiment_name: str,
) -> None:
    callback = make_callback(mlflow_store, experiment_name)
    devset = qa_examples(["France", "Italy", "Spain", "Germany", "Japan", "Egypt"])
    evaluate = dspy.Evaluate(devset=devset, metric=exact_answer, num_threads=4)
    with dspy.context(lm=make_lm(provider), callbacks=[callback]):
        result = evaluate(CapitalQA())
    assert result.score == 0.0
    assert callback.flush(30)
    assert callback.active_calls == 0

    parents, nodes = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags[Tag.ROOT_KIND] == "evaluation"
    assert parent.data.metrics[Metric.SCORE] == 0.0
    assert parent.data.metrics[Metric.LLM_CALLS] == 12
    assert parent.data.metrics[Metric.TOTAL_INPUT_TOKENS] == 12 * 120
    assert parent.data.metrics[Metric.TOTAL_COST_USD] == pytest.approx(12 * COST_PER_CALL)
    examples = [n for n in nodes if n.data.tags.get(Tag.MLFLOW_PARENT_RUN_ID)
                == parent.info.run_id]
    assert len(examples) == 6
    assert {n.data.params[Param.NODE_ID] for n in examples} == {"CapitalQA"}
    for example in examples:  # each example's own two predictor calls, no mix-ups
        assert example.data.metrics[Metric.LLM_CALLS] == 2
        assert set(children(nodes, example)) == {"draft", "answer"}
    callback.close()


class State(TypedDict, total=False):
    question: str
    answer: str


def test_dspy_inside_a_langgraph_node_lands_in_the_graph_run_once(
    provider: FakeProviderServer, mlflow_store: str, mlflow_client: MlflowClient,
    experiment_name: str,
) -> None:
    from tests.test_handler_shapes import make_handler

    handler: MLflowCallbackHandler = make_handler(mlflow_store, experiment_name)
    callback = MLflowDSPyCallback(handler=handler)
    program = CapitalQA()
    lm = make_lm(provider)

    def ask(state: State) -> State:
        with dspy.context(lm=lm, callbacks=[callback]):
            return {"answer": program(question=state["question"]).answer}

    def shout(state: State) -> State:
        return {"answer": state["answer"].upper()}

    graph = StateGraph(State)
    graph.add_node("ask", ask)
    graph.add_node("shout", shout)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", "shout")
    graph.add_edge("shout", END)
    app = graph.compile()
    out = app.invoke({"question": "What is the capital of Kenya?"},
                     config={"callbacks": [handler]})
    assert out["answer"] == "UNKNOWN"
    assert handler.flush(30)

    parents, nodes = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 1, "DSPy inside a node must not start a second workflow"
    parent = parents[0]
    assert parent.data.metrics[Metric.LLM_CALLS] == 2
    assert parent.data.metrics[Metric.TOTAL_INPUT_TOKENS] == 240  # each call exactly once
    assert parent.data.metrics[Metric.TOTAL_COST_USD] == pytest.approx(2 * COST_PER_CALL)
    by_name = children(nodes, parent)
    assert set(by_name) == {"ask", "shout"}
    assert by_name["ask"].data.metrics[Metric.LLM_CALLS] == 2
    assert by_name["ask"].data.metrics[Metric.INPUT_TOKENS] == 240
    assert by_name["shout"].data.metrics[Metric.LLM_CALLS] == 0
    assert callback.active_calls == 0
    handler.close()


def test_program_error_is_logged_failed_and_reraised_unchanged(
    provider: FakeProviderServer, mlflow_store: str, mlflow_client: MlflowClient,
    experiment_name: str,
) -> None:
    callback = make_callback(mlflow_store, experiment_name)

    class Broken(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.step = dspy.Predict("question -> answer")

        def forward(self, question: str) -> Any:
            self.step(question=question)
            raise KeyError("boom")

    with dspy.context(lm=make_lm(provider), callbacks=[callback]), pytest.raises(KeyError):
        Broken()(question="What is the capital of Italy?")
    assert callback.flush(30)
    parents, _ = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 1
    assert parents[0].info.status == "FAILED"
    assert parents[0].data.tags[Tag.ERROR_TYPE] == "KeyError"
    assert parents[0].data.metrics[Metric.TOTAL_INPUT_TOKENS] == 120
    callback.close()
