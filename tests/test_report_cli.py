"""``report costs`` / ``report compare`` through typer's CliRunner on a real sqlite store."""

from __future__ import annotations

import csv
import io
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from mlflow import MlflowClient
from typer.testing import CliRunner

from configurable_agents.commands import report_cmd
from tests.test_reporting import DAY, T0, NodeSpec, seed_workflow

cli = typer.Typer()
cli.add_typer(report_cmd.app, name="report")
runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, MlflowClient]:
    path = tmp_path_factory.mktemp("report_cli") / "mlflow.db"
    uri = f"sqlite:///{path}"
    return uri, MlflowClient(tracking_uri=uri)


@pytest.fixture(scope="module")
def seeded(store: tuple[str, MlflowClient]) -> tuple[str, str, list[str]]:
    """Read-only data shared by the module: v1 (2 runs, one failed) and v2 (2 cheaper runs)."""
    uri, client = store
    name = f"exp_{uuid.uuid4().hex[:10]}"
    eid = client.create_experiment(name)
    v1 = [NodeSpec("plan", cost=0.01, duration_ms=500), NodeSpec("write", cost=0.03)]
    v2 = [NodeSpec("plan", cost=0.005, duration_ms=250), NodeSpec("write", cost=0.015)]
    ids = [
        seed_workflow(client, eid, version="1.0.0", start_ms=T0, duration_s=2.0, nodes=v1,
                      tags={"team": "data"}),
        seed_workflow(client, eid, version="1.0.0", start_ms=T0 + DAY, duration_s=4.0,
                      nodes=v1, status="FAILED", tags={"team": "ml"}),
        seed_workflow(client, eid, version="2.0.0", start_ms=T0 + DAY + 5, duration_s=1.0,
                      nodes=v2, tags={"team": "data"}),
        seed_workflow(client, eid, version="2.0.0", start_ms=T0 + DAY + 9, duration_s=1.0,
                      nodes=v2, tags={"team": "data"}, unpriced_models=["gemini-2.5-flash"]),
    ]
    return uri, name, ids


def invoke(*args: str) -> typer.testing.Result:
    return runner.invoke(cli, ["report", *args])


def base(seeded: tuple[str, str, list[str]]) -> list[str]:
    uri, name, _ = seeded
    return ["--tracking-uri", uri, "--experiment", name]


def test_costs_table(seeded: tuple[str, str, list[str]]) -> None:
    result = invoke("costs", *base(seeded), "--group-by", "workflow_version")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Cost by workflow_version: 4 workflow runs, 2 groups")
    row_v1 = next(line for line in lines if "1.0.0" in line)
    cells = [c.strip() for c in row_v1.split("│")[1:-1]]
    assert cells == ["1.0.0", "2", "50.0%", "400", "200", "$0.0800", "$0.0400", "3.00", "3.90",
                     "0", "0"]
    total = [c.strip() for c in next(ln for ln in lines if "TOTAL" in ln).split("│")[1:-1]]
    assert total[:2] == ["TOTAL", "4"] and total[5] == "$0.1200"
    assert "1 run(s) include calls with no known price (tag pricing=unknown)" in result.stdout


def test_costs_json_and_csv_parse_back(seeded: tuple[str, str, list[str]]) -> None:
    result = invoke("costs", *base(seeded), "-g", "node", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["level"] == "node" and data["group_by"] == ["node"]
    groups = {g["node"]: g for g in data["groups"]}
    assert groups["write"]["runs"] == 4
    assert groups["write"]["cost_usd"] == pytest.approx(0.09)
    assert groups["plan"]["duration_mean_s"] == pytest.approx(0.375)
    assert groups["plan"]["unpriced_runs"] == 1
    assert data["totals"]["runs"] == 8
    assert data["scope"]["read_via"] == "database"

    result = invoke("costs", *base(seeded), "-g", "team", "-g", "day", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    by_key = {(r["team"], r["day"]): r for r in rows}
    assert {k: r["runs"] for k, r in by_key.items()} == {
        ("ml", "2026-11-02"): "1", ("data", "2026-11-02"): "2", ("data", "2026-11-01"): "1"}
    assert all(float(r["cost_usd"]) == pytest.approx(0.04) for r in rows)
    assert by_key[("ml", "2026-11-02")]["success_rate"] == "0.0"
    assert by_key[("data", "2026-11-02")]["unpriced_runs"] == "1"


def test_costs_output_file_and_plot(seeded: tuple[str, str, list[str]], tmp_path: Path) -> None:
    out, png = tmp_path / "report.json", tmp_path / "costs.png"
    result = invoke("costs", *base(seeded), "-g", "team", "--format", "json",
                    "--output", str(out), "--plot", str(png))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert json.loads(out.read_text())["totals"]["runs"] == 4
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_costs_no_runs_matched(seeded: tuple[str, str, list[str]]) -> None:
    result = invoke("costs", *base(seeded), "--filter", "tags.team = 'nobody'")
    assert result.exit_code == 0
    assert result.stdout.startswith("No runs matched (")
    assert "where tags.team = 'nobody'" in result.stdout
    as_json = invoke("costs", *base(seeded), "--since", "2030-01-01", "--format", "json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["groups"] == []
    assert "No runs matched" in as_json.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--filter", "tags.team = "], "error: invalid filter 'tags.team = ': "),
        (["--group-by", "colour"], "error: unknown group-by key 'colour'"),
        (["--since", "someday"], "error: cannot read time 'someday'"),
    ],
)
def test_costs_errors_one_line(seeded: tuple[str, str, list[str]], extra: list[str],
                               message: str) -> None:
    result = invoke("costs", *base(seeded), *extra)
    assert result.exit_code == 2  # an option value that cannot be used
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_unknown_experiment(seeded: tuple[str, str, list[str]]) -> None:
    uri, _, _ = seeded
    result = invoke("costs", "--tracking-uri", uri, "--experiment", "nope")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown experiment 'nope' at sqlite:///")
    assert result.stderr.count("\n") == 1


@pytest.fixture
def dead_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port  # closed again: connections are refused


def test_unreachable_server_fails_fast_and_redacts(dead_port: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name in report_cmd.HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    started = time.monotonic()
    result = invoke("costs", "--tracking-uri", f"http://ann:s3cret@127.0.0.1:{dead_port}")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: cannot reach tracking server http://ann:***@127.0.0.1:{dead_port}")
    assert "s3cret" not in result.output and result.stderr.count("\n") == 1
    assert elapsed < 20


def test_compare_table_and_json(seeded: tuple[str, str, list[str]]) -> None:
    _, _, ids = seeded
    args = ["compare", *base(seeded), "--baseline", "params.workflow_version = '1.0.0'",
            "--candidate", ",".join(ids[2:])]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    cells = {}
    for line in result.stdout.splitlines():
        parts = [c.strip() for c in line.split("│")[1:-1]]
        if len(parts) == 5:
            cells[parts[0]] = parts[1:]
    assert cells["runs"] == ["2", "2", "+0", "+0.0%"]
    assert cells["cost_usd"] == ["$0.0800", "$0.0400", "-$0.0400", "-50.0%"]
    assert cells["success_rate"] == ["50.0%", "100.0%", "+50.0 pp", "+100.0%"]
    assert cells["duration_mean_s"] == ["3.00", "1.00", "-2.00", "-66.7%"]
    assert cells["unpriced_runs"] == ["0", "1", "+1", "-"]
    assert "Per node" in result.stdout

    as_json = json.loads(invoke(*args, "--format", "json").stdout)
    assert as_json["baseline"]["stats"]["runs"] == 2
    plan = next(n for n in as_json["nodes"] if n["node"] == "plan")
    duration = next(d for d in plan["deltas"] if d["measure"] == "duration_mean_s")
    assert duration["baseline"] == pytest.approx(0.5)
    assert duration["candidate"] == pytest.approx(0.25)
    assert duration["relative"] == pytest.approx(-0.5)

    as_csv = list(csv.DictReader(io.StringIO(invoke(*args, "--format", "csv").stdout)))
    overall_cost = next(r for r in as_csv if r["scope"] == "overall"
                        and r["measure"] == "cost_usd")
    assert float(overall_cost["absolute"]) == pytest.approx(-0.04)


def test_no_direct_db_reads_through_search_runs_with_the_same_result(
    seeded: tuple[str, str, list[str]],
) -> None:
    outputs = [json.loads(invoke("costs", *base(seeded), "-g", "model,team", "-f", "json",
                                 *flag).stdout) for flag in ([], ["--no-direct-db"])]
    assert [o["scope"].pop("read_via") for o in outputs] == ["database", "search_runs"]
    assert outputs[0] == outputs[1]
    compared = [json.loads(invoke("compare", *base(seeded), "-f", "json", *flag,
                                  "--baseline", "tags.team = 'data'",
                                  "--candidate", "tags.team = 'ml'").stdout)
                for flag in ([], ["--no-direct-db"])]
    assert [c["scope"].pop("read_via") for c in compared] == ["database", "search_runs"]
    assert compared[0] == compared[1]


def test_compare_empty_side(seeded: tuple[str, str, list[str]]) -> None:
    result = invoke("compare", *base(seeded), "--baseline", "params.workflow_version = '0.1'",
                    "--candidate", "params.workflow_version = '2.0.0'")
    assert result.exit_code == 1, "a side with no runs is no comparison"
    assert result.stdout == ""
    assert result.stderr.startswith(
        "The baseline matched no workflow runs (params.workflow_version = '0.1'); "
        "nothing to compare it with.")
