"""``report costs`` counts KILLED and INTERRUPTED runs apart from failures (issue #14 item 6).

Handler-written runs (two successes, one failure, through a real LangGraph graph) sit next to
runs created with ``MlflowClient`` in the layout the write side uses for early stops
(MLflow KILLED, tags ``status=KILLED`` and ``stop_reason``), human-in-the-loop pauses
(MLflow FINISHED, tags ``status=INTERRUPTED`` and ``interrupted=true``) and a run closed by
``cleanup --stale`` (MLflow KILLED, its status tag still RUNNING).
"""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
import typer
from mlflow import MlflowClient
from mlflow.entities import Metric as MetricValue
from mlflow.entities import Param as ParamValue
from typer.testing import CliRunner

from configurable_agents.commands import report_cmd
from configurable_agents.names import Kind, Metric, Param, Status, StopReason, Tag
from configurable_agents.reports.reporting import cost_report
from tests.fakes import repeating
from tests.test_handler_shapes import article_writer, make_handler
from tests.test_report_readers import failing_app
from tests.test_reporting import T0

cli = typer.Typer()
cli.add_typer(report_cmd.app, name="report")


def seed_stopped(client: MlflowClient, experiment_id: str, start_ms: int, *,
                 mlflow_status: str, tags: dict[str, str], cost: float,
                 tokens: int = 500) -> str:
    """A workflow run as the write side logs an early stop or an interrupt."""
    run = client.create_run(experiment_id, start_time=start_ms, run_name="article_writer",
                            tags={Tag.KIND: Kind.WORKFLOW, Tag.WORKFLOW_NAME: "article_writer",
                                  Tag.LANGCHAIN_RUN_ID: str(uuid.uuid4()), **tags})
    run_id = run.info.run_id
    end = start_ms + 1500
    metrics = {Metric.DURATION_SECONDS: 1.5, Metric.TOTAL_INPUT_TOKENS: tokens,
               Metric.TOTAL_OUTPUT_TOKENS: tokens // 5, Metric.TOTAL_COST_USD: cost,
               Metric.RETRY_COUNT: 0}
    client.log_batch(run_id, metrics=[MetricValue(k, float(v), end, 0) for k, v in
                                      metrics.items()],
                     params=[ParamValue(Param.WORKFLOW_NAME, "article_writer")])
    client.set_terminated(run_id, mlflow_status, end_time=end)
    return run_id


@pytest.fixture(scope="module")
def outcomes(mlflow_store: str) -> tuple[str, str, float]:
    """(uri, experiment, cost of the handler-written runs)."""
    experiment = f"outcomes_{uuid.uuid4().hex[:8]}"
    handler = make_handler(mlflow_store, experiment, workflow_name="article_writer",
                           workflow_version="1.0.0")
    app = article_writer(repeating("text", 1000, 100))
    for _ in range(2):
        app.invoke({"topic": "x"}, config={"callbacks": [handler]})
    with pytest.raises(ValueError, match="draft rejected"):
        failing_app(repeating("t", 50, 5)).invoke({"topic": "y"},
                                                   config={"callbacks": [handler]})
    assert handler.flush(120)
    handler.close()
    client = MlflowClient(mlflow_store)
    eid = client.get_experiment_by_name(experiment).experiment_id
    handler_cost = sum(r.data.metrics.get(Metric.TOTAL_COST_USD, 0.0) for r in
                       client.search_runs([eid], f"tags.`{Tag.KIND}` = '{Kind.WORKFLOW}'"))
    assert handler_cost > 0
    seed_stopped(client, eid, T0, mlflow_status=Status.KILLED, cost=0.25,
                 tags={Tag.STATUS: Status.KILLED, Tag.STOP_REASON: StopReason.CLOSED_EARLY})
    seed_stopped(client, eid, T0 + 1, mlflow_status=Status.KILLED, cost=0.5,
                 tags={Tag.STATUS: Status.KILLED, Tag.STOP_REASON: StopReason.CANCELLED})
    seed_stopped(client, eid, T0 + 2, mlflow_status=Status.FINISHED, cost=0.125,
                 tags={Tag.STATUS: Status.INTERRUPTED, Tag.INTERRUPTED: "true"})
    # Closed by `cleanup --stale`: MLflow says KILLED, the tag still says RUNNING.
    seed_stopped(client, eid, T0 + 3, mlflow_status=Status.KILLED, cost=0.0625,
                 tags={Tag.STATUS: Status.RUNNING, Tag.CLOSED_BY: "cleanup --stale"})
    return mlflow_store, experiment, handler_cost


@pytest.mark.parametrize("direct_db", [True, False])
def test_killed_and_interrupted_are_counted_apart_but_cost_in_totals(
    outcomes: tuple[str, str, float], direct_db: bool
) -> None:
    uri, experiment, handler_cost = outcomes
    report = cost_report(["status"], tracking_uri=uri, experiments=[experiment],
                         direct_db=direct_db)
    totals = report.totals
    assert (totals.runs, totals.succeeded, totals.failed) == (7, 2, 1)
    assert (totals.killed, totals.interrupted, totals.completed) == (3, 1, 3)
    assert totals.success_rate == pytest.approx(2 / 3)  # not 2/7, not 2/6
    assert totals.cost_usd == pytest.approx(handler_cost + 0.25 + 0.5 + 0.125 + 0.0625)
    assert totals.input_tokens >= 4 * 500  # the stopped runs' tokens count
    by_status = {g.key[0]: g for g in report.groups}
    assert set(by_status) == {"FINISHED", "FAILED", "KILLED", "INTERRUPTED"}
    assert (by_status["KILLED"].runs, by_status["KILLED"].killed) == (3, 3)
    assert by_status["KILLED"].success_rate is None  # no finished or failed run in it
    assert by_status["KILLED"].cost_usd == pytest.approx(0.8125)
    assert by_status["INTERRUPTED"].interrupted == 1


def test_cli_shows_killed_and_interrupted_columns_and_fields(
    outcomes: tuple[str, str, float],
) -> None:
    uri, experiment, _ = outcomes
    base = ["report", "costs", "--tracking-uri", uri, "--experiment", experiment]
    table = CliRunner().invoke(cli, base)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    header = [c.strip() for c in next(ln for ln in lines if "Runs" in ln).split("┃")[1:-1]]
    total = [c.strip() for c in next(ln for ln in lines if "TOTAL" in ln).split("│")[1:-1]]
    cells = dict(zip(header, total, strict=True))
    assert (cells["Runs"], cells["Success"], cells["Killed"], cells["Interrupted"]) == (
        "7", "66.7%", "3", "1")
    assert "3 killed (stopped early or closed as stale) and 1 interrupted" in table.stdout

    data = json.loads(CliRunner().invoke(cli, [*base, "-f", "json"]).stdout)
    assert {k: data["totals"][k] for k in ("killed", "interrupted", "failed", "succeeded")} == {
        "killed": 3, "interrupted": 1, "failed": 1, "succeeded": 2}
    rows = list(csv.DictReader(io.StringIO(CliRunner().invoke(cli, [*base, "-f", "csv"]).stdout)))
    assert rows[0]["killed"] == "3" and rows[0]["interrupted"] == "1"


def test_table_leaves_out_empty_outcome_columns(mlflow_store: str) -> None:
    """Reports without killed or interrupted runs keep the familiar columns."""
    client = MlflowClient(mlflow_store)
    name = f"plain_{uuid.uuid4().hex[:8]}"
    eid = client.create_experiment(name)
    seed_stopped(client, eid, T0, mlflow_status=Status.FINISHED, cost=0.5,
                 tags={Tag.STATUS: Status.FINISHED})
    result = CliRunner().invoke(cli, ["report", "costs", "--tracking-uri", mlflow_store,
                                      "-e", name])
    assert result.exit_code == 0, result.output
    assert "Killed" not in result.stdout and "Interrupted" not in result.stdout
    assert "Success" in result.stdout
