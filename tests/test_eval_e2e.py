"""evaluate() and `configurable-agents eval` end to end on a real sqlite MLflow store.

The shipped QA dataset through the shipped QA workflows on the offline demo model:
exact accuracy and cost per correct answer, the evaluation run MLflow shows (Evaluation
runs view, dataset input, per-example table, assessments on our traces, LoggedModel),
and `report compare` with intervals.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from mlflow import MlflowClient
from typer.testing import CliRunner

from configurable_agents.cli import app as cli
from configurable_agents.evaluation import Contains, Dataset, LLMJudge, evaluate
from configurable_agents.evaluation.workflow_eval import evaluate_workflow
from configurable_agents.names import Artifact, EvalMetric, EvalTag, Kind, Metric, Tag
from configurable_agents.observability import MLflowCallbackHandler
from tests.fakes import UsageChatModel, reply

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATASET = EXAMPLES / "qa_dataset.jsonl"
# gemini-2.5-flash: $0.30 / 1M input, $2.50 / 1M output tokens.
V1_TOTAL = 1268 * 0.30e-6 + 810 * 2.50e-6  # 0.0024054
V2_TOTAL = 453 * 0.30e-6 + 37 * 2.50e-6  # 0.0002284


@pytest.fixture(scope="module")
def qa_runs(mlflow_store: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Both QA versions evaluated once for the module (each takes a few seconds)."""
    experiment = f"qa-e2e-{tmp_path_factory.mktemp('x').name}"
    results = {
        version: evaluate_workflow(EXAMPLES / name, DATASET, [Contains()], demo=True,
                                   tracking_uri=mlflow_store, experiment=experiment)
        for version, name in (("v1", "qa_assistant.yaml"), ("v2", "qa_assistant_v2.yaml"))
    }
    return {"experiment": experiment, **results}


def test_exact_accuracy_and_cost_per_correct_answer(qa_runs: dict, mlflow_store: str) -> None:
    v1, v2 = qa_runs["v1"], qa_runs["v2"]
    assert v1.accuracy == 0.95 and v2.accuracy == 0.85
    assert [e.id for e in v1.examples if not e.correct] == ["q16"]
    assert [e.id for e in v2.examples if not e.correct] == ["q16", "q19", "q20"]
    assert v1.metrics[EvalMetric.TOTAL_COST_USD] == pytest.approx(V1_TOTAL, abs=1e-12)
    assert v2.metrics[EvalMetric.TOTAL_COST_USD] == pytest.approx(V2_TOTAL, abs=1e-12)
    assert v1.cost_per_correct_usd == pytest.approx(V1_TOTAL / 19, abs=1e-12)
    assert v2.cost_per_correct_usd == pytest.approx(V2_TOTAL / 17, abs=1e-12)
    assert v1.metrics[EvalMetric.ERRORS] == 0
    # The per-example costs are the example runs' own total_cost_usd, as the handler logged.
    client = MlflowClient(mlflow_store)
    for example in v1.examples:
        run = client.get_run(example.run_id)
        assert run.data.metrics[Metric.TOTAL_COST_USD] == example.cost_usd
        assert run.data.tags[EvalTag.EVAL_RUN_ID] == v1.run_id
        assert run.data.tags[EvalTag.EVAL_EXAMPLE_ID] == example.id
        assert run.data.tags[Tag.KIND] == Kind.WORKFLOW


def test_the_evaluation_run_mlflow_shows(qa_runs: dict, mlflow_store: str) -> None:
    client = MlflowClient(mlflow_store)
    v1 = qa_runs["v1"]
    run = client.get_run(v1.run_id)
    assert run.data.tags[Tag.KIND] == Kind.EVALUATION
    assert run.data.tags["mlflow.runType"] == "genai_evaluate"  # the Evaluation runs view
    assert run.data.metrics[EvalMetric.ACCURACY] == 0.95
    assert run.data.metrics["contains/mean"] == 0.95  # logged by mlflow.genai.evaluate
    assert run.data.metrics[EvalMetric.COST_PER_CORRECT_USD] == pytest.approx(V1_TOTAL / 19)
    assert run.data.metrics[EvalMetric.LATENCY_MEAN_S] > 0
    assert run.data.metrics[EvalMetric.LATENCY_P95_S] > 0
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "qa_dataset"
    assert dataset_input.dataset.digest == v1.dataset.digest
    assert "qa_dataset.jsonl" in dataset_input.dataset.source
    # The per-example table.
    table_path = client.download_artifacts(v1.run_id, Artifact.EVAL_RESULTS)
    table = json.loads(Path(table_path).read_text())
    rows = [dict(zip(table["columns"], r, strict=True)) for r in table["data"]]
    assert len(rows) == 20
    assert {"id", "inputs", "expected", "output", "score", "cost_usd", "latency_s"} <= set(rows[0])
    assert rows[18]["id"] == "q19" and rows[18]["output"].endswith("Answer: 14")
    # A score assessment on every example's trace (our trace, linked, not a copy).
    example = v1.examples[0]
    trace = client.get_trace(example.trace_id)
    names = {a.name: a for a in trace.info.assessments}
    assert names["contains"].feedback.value == 1.0
    assert names["expected_response"].expectation.value == "Paris"
    # The workflow version as a LoggedModel, linked to the evaluation and example runs.
    model = client.get_logged_model(v1.model_id)
    assert model.name == "qa_assistant-v1-0-0"
    assert [m.model_id for m in run.inputs.model_inputs] == [v1.model_id]
    assert [m.model_id for m in client.get_run(example.run_id).inputs.model_inputs] == [
        v1.model_id]
    linked = client.search_traces(locations=[v1.experiment_id], model_id=v1.model_id)
    assert sorted(t.info.trace_id for t in linked) == sorted(e.trace_id for e in v1.examples)


def test_the_runs_list_shows_evaluation_runs_first(qa_runs: dict, mlflow_store: str) -> None:
    """Top-level rows are the evaluation runs; each example run is nested under its own."""
    client = MlflowClient(mlflow_store)
    experiment_id = qa_runs["v1"].experiment_id
    top = client.search_runs([experiment_id],
                             filter_string=f"tags.`{Tag.MLFLOW_PARENT_RUN_ID}` IS NULL")
    assert sorted(r.info.run_id for r in top) == sorted(
        [qa_runs["v1"].run_id, qa_runs["v2"].run_id])
    assert {r.data.tags[Tag.KIND] for r in top} == {Kind.EVALUATION}
    for version in ("v1", "v2"):
        result = qa_runs[version]
        nested = client.search_runs(
            [experiment_id], max_results=1000,
            filter_string=f"tags.`{Tag.MLFLOW_PARENT_RUN_ID}` = '{result.run_id}'")
        # Per-example detail is one click away: the 20 example runs, their costs and traces.
        assert sorted(r.info.run_id for r in nested) == sorted(e.run_id for e in result.examples)
        assert {r.data.tags[EvalTag.EVAL_EXAMPLE_ID] for r in nested} == {
            e.id for e in result.examples}
        assert all(r.data.tags[Tag.KIND] == Kind.WORKFLOW for r in nested)
        assert all(client.get_trace(e.trace_id) is not None for e in result.examples)


def test_report_compare_adds_quality_with_intervals(qa_runs: dict, mlflow_store: str) -> None:
    args = ["report", "compare", "--tracking-uri", mlflow_store, "-e", qa_runs["experiment"],
            "--baseline", qa_runs["v1"].run_id, "--candidate", qa_runs["v2"].run_id]
    result = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    quality = data["quality"]
    assert quality["paired_examples"] == 20
    assert quality["accuracy_delta_pp"] == {"estimate": -10.0, "low": -25.0, "high": 0.0}
    assert quality["baseline"]["cost_per_correct_usd"] == pytest.approx(V1_TOTAL / 19)
    assert quality["verdict"].startswith("v2.0.0: -91% cost [")
    assert quality["verdict"].endswith(
        "accuracy -10.0 pp [-25.0, +0.0]: no significant quality change "
        "(95% CI, 20 paired examples)")
    assert data["baseline"]["stats"]["runs"] == 20  # the cost compare covers the example runs
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0
    assert "accuracy" in table.stdout and "no significant quality change" in table.stdout


def _graph(model: UsageChatModel):
    def answer(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    return graph.compile()


def test_any_langgraph_app_with_an_llm_judge_costed_apart(
    mlflow_store: str, experiment_name: str
) -> None:
    app = _graph(UsageChatModel(messages=iter([reply("Paris", 100, 10), reply("Rome", 100, 10)])))
    judge = LLMJudge(UsageChatModel(messages=iter([reply('{"verdict": "PASS"}', 1000, 2),
                                                   reply('{"verdict": "FAIL"}', 1000, 2)]),
                                    model_name="gpt-4o-mini"))
    data = Dataset.from_records([
        {"id": "fr", "inputs": {"messages": [HumanMessage("Capital of France?")]},
         "expected": "Paris"},
        {"id": "it", "inputs": {"messages": [HumanMessage("Capital of Italy?")]},
         "expected": "Milan"},
    ], name="capitals")
    handler = MLflowCallbackHandler({"enabled": True, "tracking_uri": mlflow_store,
                                     "experiment_name": experiment_name})
    try:
        result = evaluate(app, data, [judge, Contains()], handler=handler,
                          workflow_name="capitals_app", workflow_version="0.1")
    finally:
        handler.close()
    assert [e.correct for e in result.examples] == [True, False]
    app_cost = 2 * (100 * 0.30e-6 + 10 * 2.50e-6)
    assert result.metrics[EvalMetric.TOTAL_COST_USD] == pytest.approx(app_cost)
    # gpt-4o-mini: $0.15 / 1M input, $0.60 / 1M output.
    assert result.judge_cost_usd == pytest.approx(2 * (1000 * 0.15e-6 + 2 * 0.60e-6))
    run = MlflowClient(mlflow_store).get_run(result.run_id)
    assert run.data.metrics[EvalMetric.JUDGE_COST_USD] == pytest.approx(result.judge_cost_usd)
    assert run.data.metrics["llm_judge/mean"] == 0.5
    # The judge's runs and the example runs are nested: the evaluation is the one top row.
    client = MlflowClient(mlflow_store)
    top = client.search_runs([result.experiment_id],
                             filter_string=f"tags.`{Tag.MLFLOW_PARENT_RUN_ID}` IS NULL")
    assert [r.info.run_id for r in top] == [result.run_id]
    judged = client.search_runs([result.experiment_id],
                                filter_string=f"tags.{EvalTag.EVAL_ROLE} = 'judge'")
    assert len(judged) == 2
    assert {r.data.tags[Tag.MLFLOW_PARENT_RUN_ID] for r in judged} == {result.run_id}


def test_an_example_that_raises_is_an_error_not_a_crash(
    mlflow_store: str, experiment_name: str
) -> None:
    def flaky_app(inputs: dict, config: dict) -> str:
        if inputs["n"] == 2:
            raise RuntimeError("boom")
        return str(inputs["n"])

    data = Dataset.from_records([{"n": 1, "expected": "1"}, {"n": 2, "expected": "2"}])
    result = evaluate(flaky_app, data, tracking_uri=mlflow_store, experiment_name=experiment_name,
                      workflow_name="plain", link_model=False)
    assert result.metrics[EvalMetric.ERRORS] == 1
    assert result.accuracy == 0.5
    assert result.examples[1].error == "RuntimeError: boom"


def test_eval_cli_bad_dataset_names_the_line(tmp_path: Path, mlflow_store: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "inputs": {"question": "x"}, "expected": "y"}\n'
                   '{"id": "b", "inputs": {"question": "x"}}\n')
    result = CliRunner().invoke(cli, ["eval", str(EXAMPLES / "qa_assistant.yaml"), "--dataset",
                                      str(bad), "--demo", "--tracking-uri", mlflow_store])
    assert result.exit_code == 2
    assert f"error: {bad} line 2: field 'expected' is missing" in result.stderr
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"id": "a", "inputs": {"query": "x"}, "expected": "y"}\n')
    result = CliRunner().invoke(cli, ["eval", str(EXAMPLES / "qa_assistant.yaml"), "--dataset",
                                      str(wrong), "--demo", "--tracking-uri", mlflow_store])
    assert result.exit_code == 2
    assert "example 'a': field 'inputs':" in result.stderr


def test_eval_cli_end_to_end(mlflow_store: str, experiment_name: str) -> None:
    result = CliRunner().invoke(cli, [
        "eval", str(EXAMPLES / "qa_assistant_v2.yaml"), "--dataset", str(DATASET), "--demo",
        "--tracking-uri", mlflow_store, "--experiment", experiment_name, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # only the JSON on stdout (no MLflow banner)
    assert data["metrics"][EvalMetric.ACCURACY] == 0.85
    assert data["metrics"][EvalMetric.COST_PER_CORRECT_USD] == pytest.approx(V2_TOTAL / 17)


def test_make_demo_prints_the_quality_verdict(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from configurable_agents import demo

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert demo.main(["--runs", "1", "--tracking-uri", uri]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "qa_assistant.yaml: accuracy 95%" in out
    assert "qa_assistant_v2.yaml: accuracy 85%" in out
    assert ("v2.0.0: -91% cost [-92%, -89%], accuracy -10.0 pp [-25.0, +0.0]: "
            "no significant quality change (95% CI, 20 paired examples)") in out
