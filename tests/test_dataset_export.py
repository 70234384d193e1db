"""Production runs -> eval cases: export, edit, evaluate (real sqlite store, real LangGraph)."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from configurable_agents.cli import app as cli
from configurable_agents.evaluation import Contains, evaluate
from configurable_agents.feedback import log_feedback
from configurable_agents.observability import MLflowCallbackHandler
from tests.test_handler_shapes import make_handler, runs_of
from tests.test_online_eval import qa_app

ANSWERS = {"France?": "Paris", "Spain?": "Lisbon", "Italy?": "Rome"}


def production(store: str, experiment: str) -> dict[str, str]:
    """Three answered questions; the Spain one gets a thumbs-down. {question: run id}."""
    handler: MLflowCallbackHandler = make_handler(store, experiment, workflow_name="capitals")
    app = qa_app(ANSWERS)
    for question in ANSWERS:
        app.invoke({"question": question}, config={"callbacks": [handler]})
    assert handler.flush(timeout=30)
    handler.close(timeout=10)
    client = MlflowClient(store)
    parents, _ = runs_of(client, experiment)
    by_question = {}
    for run in parents:
        inputs = json.loads(Path(client.download_artifacts(run.info.run_id, "inputs.json"))
                            .read_text())
        by_question[inputs["question"]] = run.info.run_id
    for question, run_id in by_question.items():
        log_feedback(run_id, "thumbs_up", question != "Spain?", user="ops", tracking_uri=store)
    return by_question


def test_export_edit_eval_round_trip(mlflow_store, experiment_name, tmp_path):
    runs = production(mlflow_store, experiment_name)
    cases = tmp_path / "cases.jsonl"
    result = CliRunner().invoke(cli, [
        "dataset", "export", "-e", experiment_name, "--feedback", "thumbs_up=false",
        "--tracking-uri", mlflow_store, "-o", str(cases)])
    assert result.exit_code == 0, result.output
    assert "1 case(s) exported (1 without an expected answer)" in result.stderr
    (row,) = [json.loads(line) for line in cases.read_text().splitlines()]
    assert row["inputs"] == {"question": "Spain?"}
    assert row["expected"] is None and row["output"] == {"question": "Spain?",
                                                          "answer": "Lisbon"}
    assert row["source"]["run_id"] == runs["Spain?"]
    assert row["source"]["feedback"] == {"thumbs_up": False}

    row["expected"] = "Madrid"  # the person fixes the case
    cases.write_text(json.dumps(row) + "\n")
    fixed = dict(ANSWERS, **{"Spain?": "Madrid"})
    for app, accuracy in ((qa_app(ANSWERS), 0.0), (qa_app(fixed), 1.0)):
        outcome = evaluate(app, str(cases), [Contains()], tracking_uri=mlflow_store,
                           experiment_name=f"{experiment_name}-eval", workflow_name="capitals",
                           output_key="answer", link_model=False)
        assert [e.id for e in outcome.examples] == [row["id"]]
        assert outcome.examples[0].inputs == {"question": "Spain?"}
        assert outcome.accuracy == accuracy


def test_export_filters_and_mlflow_dataset(mlflow_store, experiment_name):
    production(mlflow_store, experiment_name)
    result = CliRunner().invoke(cli, [
        "dataset", "export", "-e", experiment_name, "--feedback", "thumbs_up=true",
        "--filter", "tags.status = 'FINISHED'", "--mlflow-dataset", "capitals_good",
        "--tracking-uri", mlflow_store, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted(r["inputs"]["question"] for r in rows) == ["France?", "Italy?"]
    assert "MLflow evaluation dataset capitals_good" in result.stderr
    (dataset,) = MlflowClient(mlflow_store).search_datasets(filter_string=(
        "name = 'capitals_good'"))
    assert len(dataset.records) == 2


def test_export_bad_options_exit_2(mlflow_store, experiment_name):
    production(mlflow_store, experiment_name)
    runner = CliRunner()
    bad = runner.invoke(cli, ["dataset", "export", "-e", experiment_name, "--feedback", "oops",
                              "--tracking-uri", mlflow_store])
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.stderr
    unknown = runner.invoke(cli, ["dataset", "export", "-e", "no-such-experiment",
                                  "--tracking-uri", mlflow_store])
    assert unknown.exit_code == 2 and unknown.stdout == ""
