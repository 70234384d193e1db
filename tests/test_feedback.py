"""Feedback: an assessment on the workflow's trace, summarised on its parent run (real sqlite).

A real LangGraph graph writes the runs and the trace; feedback is then given through the three
ids an app may hold (MLflow run id, trace id, LangChain run id), from the Python API and the CLI.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from mlflow.entities import Feedback
from mlflow.tracing.client import TracingClient
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from configurable_agents.cli import app
from configurable_agents.feedback import FeedbackError, log_feedback, parse_value
from tests.fakes import repeating
from tests.test_handler_shapes import article_writer, make_handler, runs_of


def run_workflow(store: str, experiment: str, **metadata: Any) -> tuple[uuid.UUID, Any]:
    """One finished workflow: (its LangChain run id, its MLflow parent run)."""
    handler = make_handler(store, experiment, workflow_name="writer", workflow_version="1.0")
    root = uuid.uuid4()
    article_writer(repeating("text", 100, 50)).invoke(
        {"topic": "owls"}, config={"callbacks": [handler], "run_id": root, "metadata": metadata})
    assert handler.flush(timeout=30)
    handler.close(timeout=10)
    client = MlflowClient(store)
    (parent,) = [r for r in runs_of(client, experiment)[0]
                 if r.data.tags["langchain_run_id"] == str(root)]
    return root, parent


def valid_feedback(store: str, trace_id: str, name: str) -> list[Feedback]:
    info = TracingClient(store).get_trace_info(trace_id)
    return [a for a in info.assessments if a.name == name and a.valid is not False]


def test_feedback_by_each_id_lands_on_the_trace_and_the_run(mlflow_store, experiment_name):
    root, parent = run_workflow(mlflow_store, experiment_name)
    trace_id = parent.data.tags["configurable_agents.trace_id"]
    assert trace_id == f"tr-{root.hex}"

    by_run = log_feedback(parent.info.run_id, "helpful", True, user="alice",
                          tracking_uri=mlflow_store)
    by_trace = log_feedback(trace_id, "rating", 4, source="human", user="bob",
                            rationale="good but long", tracking_uri=mlflow_store)
    by_langchain = log_feedback(str(root), "topic", "animals", source="code",
                                tracking_uri=mlflow_store)
    for recorded in (by_run, by_trace, by_langchain):
        assert recorded.trace_id == trace_id
        assert recorded.run_id == parent.info.run_id

    (helpful,) = valid_feedback(mlflow_store, trace_id, "helpful")
    assert helpful.value is True and helpful.source.source_id == "alice"
    assert str(helpful.source.source_type) == "HUMAN"
    (rating,) = valid_feedback(mlflow_store, trace_id, "rating")
    assert rating.value == 4 and rating.rationale == "good but long"
    run = MlflowClient(mlflow_store).get_run(parent.info.run_id)
    assert run.data.metrics["feedback/helpful"] == 1.0
    assert run.data.metrics["feedback/helpful/count"] == 1.0
    assert run.data.metrics["feedback/rating"] == 4.0
    assert run.data.tags["feedback.label/topic"] == "animals"
    assert "feedback/topic" not in run.data.metrics


def test_same_source_overrides_other_sources_add_up(mlflow_store, experiment_name):
    _, parent = run_workflow(mlflow_store, experiment_name)
    run_id = parent.info.run_id
    first = log_feedback(run_id, "correct", False, user="alice", tracking_uri=mlflow_store)
    second = log_feedback(run_id, "correct", True, user="alice", tracking_uri=mlflow_store)
    assert second.overrides == first.assessment_id
    assert second.run_mean == 1.0 and second.run_count == 1
    third = log_feedback(run_id, "correct", False, user="bob", tracking_uri=mlflow_store)
    assert third.overrides is None
    assert third.run_mean == 0.5 and third.run_count == 2
    trace_id = parent.data.tags["configurable_agents.trace_id"]
    assert sorted(a.value for a in valid_feedback(mlflow_store, trace_id, "correct")) == [
        False, True]
    metrics = MlflowClient(mlflow_store).get_run(run_id).data.metrics
    assert metrics["feedback/correct"] == 0.5
    assert metrics["feedback/correct/count"] == 2.0


def test_node_run_id_means_its_workflow(mlflow_store, experiment_name):
    _, parent = run_workflow(mlflow_store, experiment_name)
    _, nodes = runs_of(MlflowClient(mlflow_store), experiment_name)
    recorded = log_feedback(nodes[0].info.run_id, "ok", 1, tracking_uri=mlflow_store)
    assert recorded.run_id == parent.info.run_id


@pytest.mark.parametrize("ref", [
    "", "not-an-id", "tr-" + "0" * 32, "0" * 32, str(uuid.UUID(int=7)), "tr-../../etc/passwd",
])
def test_unknown_ids_are_one_clear_error(mlflow_store, ref):
    with pytest.raises(FeedbackError):
        log_feedback(ref, "ok", True, tracking_uri=mlflow_store)


@pytest.mark.parametrize(("name", "value"), [
    ("", True), ("a/b", True), ("ok", float("nan")), ("ok", ""), ("ok", [1]), ("ok", "x" * 300),
])
def test_bad_names_and_values_are_refused(mlflow_store, name, value):
    with pytest.raises(FeedbackError):
        log_feedback("tr-" + "0" * 32, name, value, tracking_uri=mlflow_store)


def test_cli_values_are_typed():
    assert parse_value("true") is True and parse_value("thumbs_down") is False
    assert parse_value("4") == 4 and parse_value("0.75") == 0.75
    assert parse_value("too long-winded") == "too long-winded"


def test_cli_feedback_round_trip(mlflow_store, experiment_name):
    root, parent = run_workflow(mlflow_store, experiment_name)
    runner = CliRunner()
    result = runner.invoke(app, [
        "feedback", str(root), "thumbs_up", "no", "--rationale", "wrong owl",
        "--user", "carol", "--tracking-uri", mlflow_store, "--format", "json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["run_id"] == parent.info.run_id and shown["value"] is False
    assert shown["run_mean"] == 0.0 and shown["run_count"] == 1
    report = runner.invoke(app, [
        "report", "costs", "--tracking-uri", mlflow_store, "-e", experiment_name,
        "--format", "json"])
    assert report.exit_code == 0, report.output
    (group,) = json.loads(report.stdout)["groups"]
    assert group["scores"]["feedback/thumbs_up"] == {"mean": 0.0, "count": 1}


def test_cli_bad_id_is_one_line_exit_2(mlflow_store):
    result = CliRunner().invoke(app, [
        "feedback", "tr-" + "f" * 32, "ok", "true", "--tracking-uri", mlflow_store])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no MLflow trace" in result.stderr and result.stdout == ""
    bad_source = CliRunner().invoke(app, [
        "feedback", "tr-" + "f" * 32, "ok", "true", "--source", "robot",
        "--tracking-uri", mlflow_store])
    assert bad_source.exit_code == 2
