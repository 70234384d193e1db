"""Tag values are data: every renderer shows them literally and none of them crashes (#15 item 9).

Property tests build reports from rows with arbitrary tag values (pure: no store needed); the
CLI test goes through a real sqlite store with values that used to break rich (``[/]``) and
values a spreadsheet would run as formulas.
"""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient
from rich.console import Console
from typer.testing import CliRunner

from configurable_agents.commands import report_cmd
from configurable_agents.reports import render
from configurable_agents.reports.model import (
    MISSING,
    CostReport,
    ReportScope,
    RunRow,
    group_rows,
    summarize,
)
from tests.test_reporting import T0, NodeSpec, seed_workflow

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def row(team: str, cost: float = 0.5) -> RunRow:
    return RunRow(run_id=uuid.uuid4().hex, kind="workflow", start_ms=T0, status="FINISHED",
                  outcome="succeeded", input_tokens=10.0, output_tokens=5.0, cost_usd=cost,
                  priced=True, duration_s=1.0, retries=0.0, tags={"team": team}, params={},
                  run_name="wf")


def report_of(values: list[str], group_by: tuple[str, ...] = ("team",)) -> CostReport:
    rows = [row(v, cost=i + 1.0) for i, v in enumerate(values)]
    groups = group_rows(rows, group_by)
    scope = ReportScope("sqlite:///x.db", ("exp",), None, None, None)
    return CostReport(group_by, "workflow", tuple(groups), summarize(rows, ("TOTAL",)),
                      len(groups), scope, tuple(rows))


def table_text(report: CostReport) -> str:
    out = io.StringIO()
    render.print_cost_report(report, Console(file=out, width=4000, no_color=True,
                                             color_system=None))
    return out.getvalue()


def csv_expected(value: str) -> str:
    shown = value or MISSING
    return "'" + shown if shown.startswith(FORMULA_STARTS) else shown


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=4, unique=True))
def test_any_tag_value_renders_literally_in_table_csv_and_json(values: list[str]) -> None:
    report = report_of(values)
    expected = {v or MISSING for v in values}

    text = table_text(report)
    for value in expected:
        assert render.printable(value) in text
    assert "\x1b" not in text  # no terminal escape sequence gets through

    data = json.loads(render.cost_report_json(report))
    assert {g["team"] for g in data["groups"]} == expected

    rows = list(csv.DictReader(io.StringIO(render.cost_report_csv(report), newline="")))
    assert sorted(r["team"] for r in rows) == sorted(csv_expected(v) for v in expected)


@given(st.text(max_size=30))
def test_printable_is_identity_on_printable_text_and_one_line_otherwise(value: str) -> None:
    shown = render.printable(value)
    if value.isprintable():
        assert shown == value
    assert "\n" not in shown and "\r" not in shown and "\x1b" not in shown


@given(st.builds(str.__add__, st.sampled_from(FORMULA_STARTS), st.text(max_size=20)))
def test_csv_cell_neutralises_formulas_but_not_numbers(value: str) -> None:
    assert render.csv_cell(value) == "'" + value
    assert render.csv_cell(-0.25) == -0.25 and render.csv_cell(-3) == -3


def test_group_by_key_with_markup_is_shown_literally() -> None:
    report = report_of(["a"], group_by=("tag:[/]",))
    text = table_text(report)
    assert "Cost by tag:[/]:" in text and "tag:[/]" in text.splitlines()[2]


@pytest.fixture(scope="module")
def hostile(mlflow_store: str) -> tuple[str, str]:
    client = MlflowClient(mlflow_store)
    name = f"hostile_[/]_{uuid.uuid4().hex[:6]}"
    eid = client.create_experiment(name)
    for i, team in enumerate(["[/]", "[bold red]x[/]", "=HYPERLINK(\"http://x\")", "-5",
                              "@SUM(A1)", "plain"]):
        seed_workflow(client, eid, start_ms=T0 + i, nodes=[NodeSpec("n", cost=0.01)],
                      tags={"team": team})
    return mlflow_store, name


def test_cli_costs_with_markup_and_formula_team_names(hostile: tuple[str, str]) -> None:
    uri, name = hostile
    cli = typer.Typer()
    cli.add_typer(report_cmd.app, name="report")
    base = ["report", "costs", "--tracking-uri", uri, "-e", name, "-g", "team"]
    table = CliRunner().invoke(cli, base)
    assert table.exit_code == 0, table.output
    for team in ("[/]", "[bold red]x[/]", "=HYPERLINK(\"http://x\")", "-5", "@SUM(A1)"):
        assert f"│ {team} " in table.stdout
    assert f"experiment {name}" in table.stdout

    rows = list(csv.DictReader(io.StringIO(CliRunner().invoke(cli, [*base, "-f", "csv"]).stdout)))
    assert sorted(r["team"] for r in rows) == sorted(
        ["[/]", "[bold red]x[/]", "'=HYPERLINK(\"http://x\")", "'-5", "'@SUM(A1)", "plain"])
    assert all(float(r["cost_usd"]) == pytest.approx(0.01) for r in rows)

    data = json.loads(CliRunner().invoke(cli, [*base, "-f", "json"]).stdout)
    assert "=HYPERLINK(\"http://x\")" in {g["team"] for g in data["groups"]}  # JSON: as is

    empty = CliRunner().invoke(cli, [*base, "--filter", "tags.team = '[/]x'"])
    assert empty.exit_code == 0 and "No runs matched" in empty.stdout
