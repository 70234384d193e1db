"""Edge values on the read-side CLI: one line, exit 2, no traceback (#15 item 11), a dead
database in seconds, and cleanup saying why old runs it did not write stay (#14 item 8)."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from mlflow import MlflowClient
from typer.testing import CliRunner, Result

from configurable_agents.commands import cleanup_cmd, report_cmd
from configurable_agents.names import Kind, Tag
from configurable_agents.reports.retention import OTHER_RUNS_REASON, cleanup_runs

cli = typer.Typer()
cli.add_typer(report_cmd.app, name="report")
cli.command("cleanup")(cleanup_cmd.cleanup)
DAY_MS = 86_400_000


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_one_line(result: Result, code: int, starts: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.startswith(starts), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output and "╭" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.fixture(scope="module")
def experiment(mlflow_store: str) -> str:
    name = f"edges_{uuid.uuid4().hex[:8]}"
    MlflowClient(mlflow_store).create_experiment(name)
    return name


@pytest.mark.parametrize(
    ("option", "value"),
    [("--since", "9999999999d"), ("--since", "99999999999999999999w"),
     ("--until", "9999-12-31"), ("--since", "0000-01-01x")],
)
def test_report_time_out_of_range(mlflow_store: str, experiment: str, option: str,
                                  value: str) -> None:
    result = invoke("report", "costs", "--tracking-uri", mlflow_store, "-e", experiment,
                    option, value)
    starts = "error: cannot read time" if value.endswith("x") else (
        f"error: time {value!r} is out of range")
    assert_one_line(result, 2, starts)


def test_report_far_but_valid_times_work(mlflow_store: str, experiment: str) -> None:
    result = invoke("report", "costs", "--tracking-uri", mlflow_store, "-e", experiment,
                    "--since", "700000d", "--until", "9999-12-30", "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["totals"]["runs"] == 0


@pytest.mark.parametrize("option", ["--output", "--plot"])
def test_report_output_into_missing_folder(mlflow_store: str, experiment: str, tmp_path: Path,
                                           option: str) -> None:
    target = tmp_path / "missing" / "out.file"
    for command in (["costs"], ["compare", "--baseline", "x", "--candidate", "y"]):
        if option == "--plot" and command[0] == "compare":
            continue
        result = invoke("report", *command, "--tracking-uri", mlflow_store, "-e", experiment,
                        option, str(target))
        assert_one_line(result, 2, f"error: {option} {target}: folder {target.parent} "
                                   "does not exist")
    assert not target.parent.exists()


def test_report_output_is_a_folder(mlflow_store: str, experiment: str, tmp_path: Path) -> None:
    result = invoke("report", "costs", "--tracking-uri", mlflow_store, "-e", experiment,
                    "-o", str(tmp_path))
    assert_one_line(result, 2, f"error: --output {tmp_path} is a folder")


@pytest.mark.parametrize("value", ["inf", "1e308", "nan", "-1", "-inf", "36501"])
def test_cleanup_older_than_days_out_of_range(mlflow_store: str, experiment: str,
                                              value: str) -> None:
    result = invoke("cleanup", "--tracking-uri", mlflow_store, "-e", experiment, "--dry-run",
                    "--older-than-days", value)
    assert_one_line(result, 2, "Error: --older-than-days must be >= 0 and at most 36,500 days")


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-5"])
def test_cleanup_stale_after_minutes_out_of_range(mlflow_store: str, experiment: str,
                                                  value: str) -> None:
    result = invoke("cleanup", "--tracking-uri", mlflow_store, "-e", experiment, "--dry-run",
                    "--stale", "--stale-after-minutes", value)
    assert_one_line(result, 2, "Error: --stale-after-minutes must be > 0")


@pytest.fixture
def dead_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port  # closed again: connections are refused


@pytest.mark.parametrize("port", [1, None])
def test_unreachable_postgres_fails_in_seconds(dead_port: int, port: int | None) -> None:
    uri = f"postgresql://u:s3cret@127.0.0.1:{port or dead_port}/db"
    for args in (["report", "costs"], ["report", "compare", "--baseline", "a",
                                       "--candidate", "b"],
                 ["cleanup", "--dry-run", "--older-than-days", "1"]):
        started = time.monotonic()
        result = invoke(*args, "--tracking-uri", uri)
        elapsed = time.monotonic() - started
        prefix = "Error: " if args[0] == "cleanup" else "error: "
        assert_one_line(result, 1, f"{prefix}cannot reach tracking database "
                                   f"postgresql://u:***@127.0.0.1:{port or dead_port}/db")
        assert "s3cret" not in result.output
        assert elapsed < 15  # MLflow's own engine retries alone take ~100 s


# --------------------------------------------------------------------------- #14 item 8


@pytest.fixture
def foreign(mlflow_store: str) -> tuple[str, str, list[str], str]:
    """An experiment of old runs other code logged, one old workflow run of ours, one new."""
    client = MlflowClient(mlflow_store)
    name = f"foreign_{uuid.uuid4().hex[:8]}"
    eid = client.create_experiment(name)
    old = int(time.time() * 1000) - 40 * DAY_MS
    theirs = []
    for i in range(3):
        run_id = client.create_run(eid, start_time=old + i, run_name=f"train_{i}").info.run_id
        client.set_terminated(run_id, "FINISHED", end_time=old + i + 10)
        theirs.append(run_id)
    child = client.create_run(eid, start_time=old + 5, tags={
        Tag.MLFLOW_PARENT_RUN_ID: theirs[0]}).info.run_id  # nested, still not ours
    theirs.append(child)
    ours = client.create_run(eid, start_time=old + 9, tags={Tag.KIND: Kind.WORKFLOW}).info
    client.set_terminated(ours.run_id, "FINISHED", end_time=old + 20)
    recent = client.create_run(eid, start_time=int(time.time() * 1000), run_name="fresh")
    client.set_terminated(recent.info.run_id, "FINISHED")
    return mlflow_store, name, theirs, ours.run_id


def test_cleanup_says_how_many_foreign_runs_it_left_and_why(
    foreign: tuple[str, str, list[str], str],
) -> None:
    uri, name, theirs, ours = foreign
    base = ["cleanup", "--tracking-uri", uri, "-e", name, "--older-than-days", "30"]
    dry = invoke(*base, "--dry-run")
    assert dry.exit_code == 0, dry.output
    line = next(ln for ln in dry.stdout.splitlines() if ln.startswith(f"  {name}:"))
    assert "1 workflow runs matched" in line
    assert f"4 other runs older than the cutoff left: {OTHER_RUNS_REASON}" in line

    as_json = json.loads(invoke(*base, "--dry-run", "--json").stdout)
    assert (as_json["matched"], as_json["other_runs"], as_json["dry_run"]) == (1, 4, True)
    assert as_json["experiments"][0]["other_runs"] == 4
    assert as_json["other_runs_reason"] == OTHER_RUNS_REASON

    summary = cleanup_runs(uri, [name], 30)
    assert (summary.deleted, summary.other_runs) == (1, 4)
    client = MlflowClient(uri)
    assert all(client.get_run(r).info.lifecycle_stage == "active" for r in theirs)
    assert client.get_run(ours).info.lifecycle_stage == "deleted"

    again = invoke(*base, "--yes")
    assert again.exit_code == 0, again.output
    assert "0 workflow runs matched" in again.stdout and "4 other runs" in again.stdout


def test_cleanup_stale_answers_json(foreign: tuple[str, str, list[str], str]) -> None:
    uri, name, _, _ = foreign
    result = invoke("cleanup", "--tracking-uri", uri, "-e", name, "--stale", "--json")
    assert result.exit_code == 0, result.output
    stale = json.loads(result.stdout)["stale"]
    assert [e["name"] for e in stale["experiments"]] == [name]
    assert stale["dry_run"] is False
