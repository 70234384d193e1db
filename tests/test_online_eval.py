"""Online evaluation: live finished workflows scored off the caller's thread (real parts).

A real LangGraph graph, a handler built from config with the MLflow, Prometheus and online
evaluation sinks, the LLM judge a real ChatOpenAI pointed at the loopback provider stub.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from mlflow.tracing.client import TracingClient
from mlflow.tracking import MlflowClient
from prometheus_client import generate_latest
from pydantic import ValidationError

from configurable_agents.config.online_eval_config import OnlineEvalConfig
from configurable_agents.config.schema import ObservabilityConfig
from configurable_agents.names import Quality
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.online_eval import sampled
from tests.fake_provider_server import FakeProviderServer
from tests.test_handler_shapes import runs_of


class QA(TypedDict, total=False):
    question: str
    answer: str


def qa_app(answers: dict[str, str], gate: threading.Event | None = None):
    def answer(state: QA) -> dict[str, str]:
        if gate is not None:
            gate.wait(5)
        return {"answer": answers[state["question"]]}

    graph = StateGraph(QA)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    return graph.compile()


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProviderServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server = FakeProviderServer().start()
    server.openai_usage = {"prompt_tokens": 120, "completion_tokens": 6, "total_tokens": 126}
    # The judge passes answers that name Paris and fails the rest.
    server.openai_reply = lambda body: (
        '{"verdict": "PASS", "rationale": "names the capital"}'
        if "Paris" in str(body["messages"][-1]["content"])
        else '{"verdict": "FAIL", "rationale": "wrong city"}')
    yield server
    server.stop()


def observability(store: str, experiment: str, provider_url: str, **online: object):
    return ObservabilityConfig.model_validate({
        "mlflow": {"enabled": True, "tracking_uri": store, "experiment_name": experiment},
        "prometheus": {"enabled": True},
        "online_eval": {
            "enabled": True, "sample_rate": 1.0, "scorers": ["regex:^[A-Z]", "llm_judge"],
            "judge": {"provider": "openai", "model": "gpt-4o-mini",
                      "base_url": f"{provider_url}/v1"},
            **online,
        },
    })


def test_scores_land_on_trace_run_and_prometheus_judge_apart(
        mlflow_store, experiment_name, provider):
    config = observability(mlflow_store, experiment_name, provider.url)
    handler = MLflowCallbackHandler(config, workflow_name="capitals", workflow_version="2")
    app = qa_app({"France?": "Paris", "Spain?": "madrid, I think"})
    for question in ("France?", "Spain?"):
        app.invoke({"question": question}, config={"callbacks": [handler]})
    assert handler.flush(timeout=60)
    stats = handler.stats().sinks["online_eval"]
    assert stats.exported == 2 and stats.failed == 0

    client = MlflowClient(mlflow_store)
    parents, _ = runs_of(client, experiment_name)
    workflow_runs = [r for r in parents if r.data.params.get("workflow_name") == "capitals"]
    judge_runs = [r for r in parents if r.data.tags.get("eval_role") == "judge"]
    assert len(workflow_runs) == 2 and len(judge_runs) == 2
    by_answer = {}
    for run in workflow_runs:
        info = TracingClient(mlflow_store).get_trace_info(run.data.tags[
            "configurable_agents.trace_id"])
        scores = {a.name: a for a in info.assessments if a.valid is not False}
        assert str(scores["llm_judge"].source.source_type) == "LLM_JUDGE"
        assert str(scores["regex"].source.source_type) == "CODE"
        assert scores["llm_judge"].source.source_id == "online_eval"
        question = "France?" if run.data.metrics["quality/llm_judge"] == 1.0 else "Spain?"
        by_answer[question] = run.data.metrics
    assert by_answer["France?"]["quality/regex"] == 1.0
    assert by_answer["Spain?"]["quality/regex"] == 0.0
    assert by_answer["Spain?"]["quality/llm_judge"] == 0.0
    # The judge's tokens and cost are its own runs', never the workflow's.
    assert all(m["total_input_tokens"] == 0 for m in by_answer.values())
    assert all(r.data.metrics["total_input_tokens"] == 120 for r in judge_runs)
    # ... and what it spent on each workflow is on that workflow's run, under its own names
    # (gpt-4o-mini: $0.15 / 1M input, $0.60 / 1M output tokens).
    for metrics in by_answer.values():
        assert metrics[Quality.JUDGE_INPUT_TOKENS] == 120
        assert metrics[Quality.JUDGE_OUTPUT_TOKENS] == 6
        assert metrics[Quality.JUDGE_COST_USD] == pytest.approx(120 * 0.15e-6 + 6 * 0.60e-6)
        assert metrics["total_cost_usd"] == 0
    assert sorted(r.data.tags[Quality.JUDGED_RUN_TAG] for r in judge_runs) == sorted(
        r.data.tags["langchain_run_id"] for r in workflow_runs)

    (prometheus,) = [s for s in handler.sinks if s.name == "prometheus"]
    exposition = generate_latest(prometheus.metrics.registry).decode()
    assert ('configurable_agents_quality_score_count{scorer="llm_judge",workflow="capitals",'
            'workflow_version="2"} 2.0') in exposition
    assert ('configurable_agents_quality_score_sum{scorer="llm_judge",workflow="capitals",'
            'workflow_version="2"} 1.0') in exposition
    handler.close(timeout=10)


def test_a_dead_judge_neither_slows_nor_fails_the_app(mlflow_store, experiment_name, provider):
    url = provider.url
    provider.stop()  # the judge endpoint refuses connections
    config = observability(mlflow_store, experiment_name, url, scorers=["llm_judge"])
    handler = MLflowCallbackHandler(config, workflow_name="capitals")
    app = qa_app({"France?": "Paris"})
    result = app.invoke({"question": "France?"}, config={"callbacks": [handler]})
    assert result == {"question": "France?", "answer": "Paris"}
    assert handler.flush(timeout=60)
    assert handler.stats().sinks["online_eval"].failed == 1
    parents, _ = runs_of(MlflowClient(mlflow_store), experiment_name)
    (run,) = [r for r in parents if r.data.tags.get("eval_role") != "judge"]
    assert run.data.tags["status"] == "FINISHED"
    assert not [k for k in run.data.metrics if k.startswith("quality/")]
    handler.close(timeout=10)


def test_a_reply_without_verdict_is_no_score(mlflow_store, experiment_name, provider):
    provider.openai_reply = lambda body: "I think it passes, mostly."
    config = observability(mlflow_store, experiment_name, provider.url, scorers=["llm_judge"])
    handler = MLflowCallbackHandler(config, workflow_name="capitals")
    qa_app({"France?": "Paris"}).invoke({"question": "France?"},
                                        config={"callbacks": [handler]})
    assert handler.flush(timeout=60)
    assert handler.stats().sinks["online_eval"].failed == 1
    parents, _ = runs_of(MlflowClient(mlflow_store), experiment_name)
    (run,) = [r for r in parents if r.data.tags.get("eval_role") != "judge"]
    assert not [k for k in run.data.metrics if k.startswith("quality/")]
    handler.close(timeout=10)


def test_scoring_runs_off_the_callers_thread(mlflow_store, experiment_name, provider):
    """The caller returns while the judge is still blocked: scoring is on the sink's worker."""
    release = threading.Event()
    provider.openai_reply = lambda body: (release.wait(10),
                                          '{"verdict": "PASS", "rationale": "ok"}')[1]
    config = observability(mlflow_store, experiment_name, provider.url, scorers=["llm_judge"])
    handler = MLflowCallbackHandler(config, workflow_name="capitals")
    started = time.monotonic()
    qa_app({"France?": "Paris"}).invoke({"question": "France?"},
                                        config={"callbacks": [handler]})
    assert time.monotonic() - started < 5
    assert not release.is_set()
    release.set()
    assert handler.flush(timeout=60)
    assert handler.stats().sinks["online_eval"].exported == 1
    handler.close(timeout=10)


def test_sampling_is_deterministic_and_near_the_rate():
    ids = [str(uuid.UUID(int=i * 7919 + 13)) for i in range(2000)]
    picked = [i for i in ids if sampled(i, 0.25)]
    assert 0.2 < len(picked) / len(ids) < 0.3
    assert picked == [i for i in ids if sampled(i, 0.25)]
    assert all(sampled(i, 1.0) for i in ids[:10]) and not any(sampled(i, 0.0) for i in ids[:10])


@pytest.mark.parametrize("scorers", [["contains"], ["regex"], ["regex:("], ["llm_judge",
                                                                             "llm_judge"]])
def test_scorers_needing_an_expected_answer_are_refused(scorers):
    with pytest.raises(ValidationError):
        OnlineEvalConfig(enabled=True, scorers=scorers)


def test_a_message_serialised_with_a_role_is_scored_by_its_content() -> None:
    """``{"role", "content"}`` (OpenAI's shape) is a message too, not a mapping to score."""
    from types import SimpleNamespace

    from configurable_agents.online_eval.subject import subject_of

    facts = SimpleNamespace(
        inputs={"question": "Capital of Spain?"},
        outputs={"messages": [{"role": "assistant", "content": "Madrid"}]},
    )
    assert subject_of(facts, None).output == "Madrid"  # type: ignore[arg-type]


def test_a_trace_whose_spans_wait_in_their_batch_is_not_yet_a_store_failure(
    mlflow_store: str, experiment_name: str
) -> None:
    """The MLflow sink stores a trace's info first and batches its spans (up to 5 s): in
    between, MLflow's get_trace raises "missing span data". Online evaluation must read
    that as "not yet" (wait for a later tick), not count an internal error."""
    from mlflow.entities import TraceInfo, TraceLocation, TraceState

    from configurable_agents.online_eval.sink import _stored_trace

    experiment_id = MlflowClient(mlflow_store).create_experiment(experiment_name)
    tracing = TracingClient(mlflow_store)
    info = TraceInfo(trace_id=f"tr-{uuid.uuid4().hex}",
                     trace_location=TraceLocation.from_experiment_id(experiment_id),
                     request_time=int(time.time() * 1000), state=TraceState.OK,
                     execution_duration=5)
    tracing.start_trace(info)  # info only, as between our two writes
    assert _stored_trace(tracing, info.trace_id) is None
    assert _stored_trace(tracing, f"tr-{uuid.uuid4().hex}") is None  # unknown: not yet either
