"""``configurable-agents config validate FILE``: resolved config or errors, never a secret.

Also the top-level ``validate FILE`` / ``run FILE``: a file refused before validation
(not UTF-8, an alias bomb, too many nodes) is one line on stderr and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from configurable_agents.cli import app
from tests.test_config_loader import BILLION_LAUGHS, write
from tests.test_workflow_schema import chain_workflow

SECRET = "S3cr3t-Pa55"
runner = CliRunner()


def mlflow_file(directory: Path, *lines: str) -> Path:
    body = "".join(f"      {line}\n" for line in lines)
    return write(directory, f"config:\n  observability:\n    mlflow:\n{body}")


def validate(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["config", "validate", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout, result.stderr


def test_valid_file_prints_the_resolved_config_as_json(workdir: Path) -> None:
    path = mlflow_file(workdir, "enabled: true", 'experiment_name: "production_workflows"')
    code, out, err = validate(str(path))
    assert code == 0, err
    resolved = json.loads(out)
    assert resolved["llm"] is None
    mlflow = resolved["observability"]["mlflow"]
    assert mlflow["enabled"] is True
    assert mlflow["experiment_name"] == "production_workflows"
    assert mlflow["tracking_uri"] == "sqlite:///mlflow.db"  # defaults are shown resolved
    assert mlflow["retention_days"] is None
    assert mlflow["async_logging"] is True
    assert err == ""
    # Validation only: no store is created for the default sqlite URI.
    assert sorted(p.name for p in workdir.iterdir()) == ["workflow.yaml"]


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (f"postgresql://user:{SECRET}@host/db", "postgresql://user:***@host/db"),
        (f"https://user:{SECRET}@mlflow.example.com", "https://user:***@mlflow.example.com"),
        (f"https://{SECRET}@mlflow.example.com", "https://***@mlflow.example.com"),
    ],
)
def test_credentials_are_masked_in_the_output(workdir: Path, uri: str, shown: str) -> None:
    code, out, err = validate(str(mlflow_file(workdir, f'tracking_uri: "{uri}"')))
    assert code == 0, err
    assert json.loads(out)["observability"]["mlflow"]["tracking_uri"] == shown
    assert SECRET not in out + err


def test_credentials_from_the_environment_are_masked(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_TRACKING_URI", f"https://u:{SECRET}@h")
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_RETENTION_DAYS", "14")
    path = mlflow_file(workdir, "retention_days: 90")
    code, out, err = validate(str(path))
    assert code == 0, err
    mlflow = json.loads(out)["observability"]["mlflow"]
    assert (mlflow["tracking_uri"], mlflow["retention_days"]) == ("https://u:***@h", 14)
    assert SECRET not in out + err

    code, out, _ = validate(str(path), "--no-env")
    assert code == 0
    assert json.loads(out)["observability"]["mlflow"]["retention_days"] == 90


def test_invalid_file_prints_errors_and_exits_1(workdir: Path) -> None:
    path = mlflow_file(workdir, "enabled: true", 'experiment_nme: "x"', "retention_days: -1")
    code, out, err = validate(str(path))
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"Invalid configuration: {path}"
    assert lines[1].startswith(
        f"{path}:5: config.observability.mlflow: unknown key 'experiment_nme' "
        "(did you mean experiment_name?)"
    )
    assert len(lines) == 2  # the typo stops the block before its other fields are checked
    assert sorted(p.name for p in workdir.iterdir()) == ["workflow.yaml"]


def test_invalid_uri_with_a_password_is_masked_in_errors(workdir: Path) -> None:
    path = mlflow_file(
        workdir, f'tracking_uri: "mongodb://admin:{SECRET}@db/x"', "retention_days: 0"
    )
    code, out, err = validate(str(path))
    assert code == 1
    assert SECRET not in out + err
    assert err.splitlines()[1:] == [
        f"{path}:4: config.observability.mlflow.tracking_uri: unsupported tracking_uri scheme "
        "'mongodb' in 'mongodb://admin:***@db/x'; use one of sqlite:///path.db, "
        "postgresql://user:pass@host/db, http(s)://host:port, file:///dir",
        f"{path}:5: config.observability.mlflow.retention_days: "
        "Input should be greater than or equal to 1 (got 0)",
    ]


def test_invalid_env_value_names_the_variable(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_ENABLED", "sometimes")
    code, _, err = validate(str(mlflow_file(workdir, "enabled: true")))
    assert code == 1
    assert "environment: CONFIGURABLE_AGENTS_MLFLOW_ENABLED: Input should be a valid boolean" in err


def test_error_text_with_brackets_is_printed_verbatim(workdir: Path) -> None:
    # '[red]' in a user's value must not be swallowed as console markup.
    path = mlflow_file(workdir, '"[bold]enabled": true')
    code, _, err = validate(str(path))
    assert code == 1
    assert f"{path}:4: config.observability.mlflow: unknown key '[bold]enabled'" in err


def test_malformed_yaml_and_missing_file(workdir: Path) -> None:
    broken = write(workdir, "config: {observability: [\n")
    code, _, err = validate(str(broken))
    assert code == 1
    assert f"{broken}:2: invalid YAML: " in err
    code, _, err = validate(str(workdir / "absent.yaml"))
    assert code == 1
    assert f"{workdir / 'absent.yaml'}: file not found" in err


def test_adr_file_store_uri_validates_without_touching_disk(workdir: Path) -> None:
    path = mlflow_file(workdir, "enabled: true", 'tracking_uri: "file://./mlruns"')
    code, out, _ = validate(str(path))
    assert code == 0
    assert json.loads(out)["observability"]["mlflow"]["tracking_uri"] == "file://./mlruns"
    assert not (workdir / "mlruns").exists()


def refused_file(directory: Path, case: str) -> tuple[Path, str]:
    """A workflow file the CLI must refuse, and the message after ``Workflow refused: path``."""
    if case == "latin1":
        path = directory / "latin1.yaml"
        path.write_bytes(chain_workflow(2).replace("Step", "Étape").encode("latin-1"))
        return path, ":9: not UTF-8 text (byte 0xc9 at offset 163); save the file as UTF-8"
    if case == "bomb":
        return write(directory, BILLION_LAUGHS), ":1: YAML limit: more than 100000 YAML nodes"
    path = write(directory, chain_workflow(1_500))
    return path, ": nodes: 1500 nodes, more than the limit of 1000 per workflow"


@pytest.mark.parametrize("case", ["latin1", "bomb", "nodes"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_refused_workflow_files_exit_2_with_one_line(
    workdir: Path, command: str, case: str
) -> None:
    path, expected = refused_file(workdir, case)
    inputs = ["--input", "topic=x"] if command == "run" else []
    result = runner.invoke(app, [command, str(path), *inputs])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a crash
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Workflow refused: {path}{expected}")
    assert sorted(p.name for p in workdir.iterdir()) == [path.name]  # nothing ran or was created


def test_workflow_errors_print_user_text_without_markup(workdir: Path) -> None:
    absent = workdir / "[bold]absent.yaml"
    result = runner.invoke(app, ["validate", str(absent)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["Invalid workflow", f"{absent}: file not found"]
