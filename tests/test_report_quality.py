"""``report quality``: score trends per workflow version and day, from a real sqlite store.

Real LangGraph runs write the workflow runs; feedback goes through ``log_feedback`` (the
assessment on the trace plus the parent run's ``feedback/<name>`` mean and count), and the
report reads them back through both store readers.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from configurable_agents.cli import app
from configurable_agents.feedback import log_feedback
from configurable_agents.reports.reporting import cost_report
from configurable_agents.reports.trends import trends_of
from tests.fakes import repeating
from tests.test_handler_shapes import article_writer, make_handler, runs_of

DAY_MS = 86_400_000


def run_version(store: str, experiment: str, version: str, **metadata: Any) -> str:
    """One finished workflow of ``writer`` at ``version``: its MLflow parent run id."""
    handler = make_handler(store, experiment, workflow_name="writer", workflow_version=version)
    root = uuid.uuid4()
    article_writer(repeating("text", 100, 50)).invoke(
        {"topic": "owls"}, config={"callbacks": [handler], "run_id": root, "metadata": metadata})
    assert handler.flush(timeout=30)
    handler.close(timeout=10)
    (parent,) = [r for r in runs_of(MlflowClient(store), experiment)[0]
                 if r.data.tags["langchain_run_id"] == str(root)]
    return parent.info.run_id


@pytest.fixture
def scored(mlflow_store: str, experiment_name: str) -> dict[str, str]:
    """v1: two runs (one rated 0 by alice and 1 by bob, one rated 1); v2: one rated 0 and
    one run without feedback."""
    runs = {name: run_version(mlflow_store, experiment_name, version)
            for name, version in (("a", "1.0"), ("b", "1.0"), ("c", "2.0"), ("d", "2.0"))}
    log_feedback(runs["a"], "helpful", False, user="alice", tracking_uri=mlflow_store)
    log_feedback(runs["a"], "helpful", True, user="bob", tracking_uri=mlflow_store)
    log_feedback(runs["b"], "helpful", True, user="alice", tracking_uri=mlflow_store)
    log_feedback(runs["c"], "helpful", False, user="alice", tracking_uri=mlflow_store)
    return runs


def _report(store: str, experiment: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["report", "quality", "--tracking-uri", store,
                                      "-e", experiment, *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("reader", ["--direct-db", "--no-direct-db"])
def test_trend_per_version_weights_each_assessment(mlflow_store, experiment_name, scored,
                                                   reader):
    code, out, err = _report(mlflow_store, experiment_name, "--format", "json", reader)
    assert code == 0, err
    report = json.loads(out)
    assert report["runs"] == 4 and report["scored_runs"] == 3
    points = {(p["workflow_version"], p["score"]): p for p in report["trends"]}
    assert set(points) == {("1.0", "feedback/helpful"), ("2.0", "feedback/helpful")}
    v1, v2 = points["1.0", "feedback/helpful"], points["2.0", "feedback/helpful"]
    # v1: run a's mean 0.5 over 2 assessments, run b's 1.0 over 1: (0.5*2 + 1) / 3.
    assert v1["mean"] == pytest.approx(2 / 3) and v1["count"] == 3 and v1["runs"] == 2
    assert v2["mean"] == 0.0 and v2["count"] == 1 and v2["runs"] == 1
    assert v1["workflow"] == "writer" and v1["bucket"] == v2["bucket"]


def test_days_are_separate_points_and_weeks_start_on_monday(mlflow_store, experiment_name,
                                                            scored):
    rows = [r for r in cost_report(tracking_uri=mlflow_store,
                                   experiments=[experiment_name]).rows if r.kind == "workflow"]
    a = next(r for r in rows if r.run_id == scored["a"])
    earlier = replace(a, run_id="earlier", start_ms=a.start_ms - 2 * DAY_MS)
    v1 = [p for p in trends_of([*rows, earlier]) if p.workflow_version == "1.0"]
    assert [p.bucket for p in v1] == [earlier.day, a.day]  # oldest first
    assert [p.count for p in v1] == [2, 3]
    weekly = trends_of([*rows, earlier], "week")
    assert all(p.bucket <= a.day for p in weekly)
    assert all(date.fromisoformat(p.bucket).weekday() == 0 for p in weekly)


def test_csv_and_table(mlflow_store, experiment_name, scored):
    code, out, err = _report(mlflow_store, experiment_name, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["workflow_version"], r["count"]) for r in rows] == [("1.0", "3"), ("2.0", "1")]
    code, out, err = _report(mlflow_store, experiment_name)
    assert code == 0, err
    assert "3 of 4 workflow runs scored" in out and "feedback/helpful" in out


def test_no_scores_and_bad_options(mlflow_store, experiment_name):
    run_version(mlflow_store, experiment_name, "1.0")
    code, out, err = _report(mlflow_store, experiment_name, "--format", "json")
    assert code == 0 and json.loads(out)["trends"] == []
    assert "No feedback or online scores on the 1 workflow runs read." in err
    code, out, _ = _report(mlflow_store, experiment_name, "--format", "csv")
    assert out.startswith("workflow,workflow_version,bucket,score")
    # Exit codes as in ``report costs`` and the whole CLI: 2 for an option value that
    # cannot be used (an unknown bucket, an unreadable time).
    for bad, exit_code in ((["--bucket", "month"], 2), (["--since", "soon"], 2)):
        code, out, err = _report(mlflow_store, experiment_name, *bad)
        assert code == exit_code and out == "" and err.strip().count("\n") == 0, err


def _compare(store: str, experiment: str, baseline: str, candidate: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, [
        "report", "compare", "--tracking-uri", store, "-e", experiment, "--baseline", baseline,
        "--candidate", candidate, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_compare_production_runs_unpaired(mlflow_store, experiment_name, scored):
    shown = _compare(mlflow_store, experiment_name, "params.workflow_version = '1.0'",
                     "params.workflow_version = '2.0'")
    (score,) = shown["scores"]
    # Units are runs: v1 runs a (0.5) and b (1.0), v2 run c (0.0); d has no feedback.
    assert score["score"] == "feedback/helpful" and score["pairing"] == "unpaired"
    assert score["baseline"] == 0.75 and score["candidate"] == 0.0
    assert score["baseline_count"] == 3 and score["candidate_count"] == 1
    assert score["units"] == [2, 1]
    # The candidate's one run is always 0; the baseline resamples to 0.5, 0.75 or 1.0.
    assert score["delta"] == {"estimate": -0.75, "low": -1.0, "high": -0.5}
    table = CliRunner().invoke(app, [
        "report", "compare", "--tracking-uri", mlflow_store, "-e", experiment_name,
        "--baseline", "params.workflow_version = '1.0'",
        "--candidate", "params.workflow_version = '2.0'"])
    assert "-0.750 [-1.000, -0.500]" in table.stdout and "- (runs)" in table.stdout


def test_compare_evaluation_examples_paired_by_example_id(mlflow_store, experiment_name):
    values = {("E1", "q1"): 0, ("E1", "q2"): 1, ("E1", "q3"): 0,
              ("E2", "q1"): 1, ("E2", "q2"): 1, ("E2", "q4"): 1}
    for (evaluation, example), value in values.items():
        run_id = run_version(mlflow_store, experiment_name, evaluation, ca_tags={
            "eval_run_id": evaluation, "eval_example_id": example})
        log_feedback(run_id, "correct", value, tracking_uri=mlflow_store)
    shown = _compare(mlflow_store, experiment_name, "tags.eval_run_id = 'E1'",
                     "tags.eval_run_id = 'E2'")
    (score,) = shown["scores"]
    # Only q1 and q2 are on both sides: differences +1 and 0, paired.
    assert score["pairing"] == "example" and score["units"] == [2, 2]
    assert score["baseline"] == 0.5 and score["candidate"] == 1.0
    assert score["delta"]["estimate"] == 0.5
    assert score["delta"]["low"] == 0.0 and score["delta"]["high"] == 1.0
    csv_out = CliRunner().invoke(app, [
        "report", "compare", "--tracking-uri", mlflow_store, "-e", experiment_name,
        "--baseline", "tags.eval_run_id = 'E1'", "--candidate", "tags.eval_run_id = 'E2'",
        "--format", "csv"]).stdout
    assert "score,feedback/correct,0.5,1.0,0.5," in csv_out
