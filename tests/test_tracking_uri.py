"""``prepare_tracking_uri``: the ``file://./mlruns`` decision, against a real MlflowClient.

MLflow 3 refuses its file store unless ``MLFLOW_ALLOW_FILE_STORE=true``. We opt in for the
user (they wrote the ADR's ``file://./mlruns``) and say once how to migrate. Every test
starts with the variable absent and monkeypatch restores it afterwards.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from configurable_agents.tracking import uri as tracking
from configurable_agents.tracking.uri import is_file_store, prepare_tracking_uri

ALLOW = "MLFLOW_ALLOW_FILE_STORE"
LOGGER = "configurable_agents.tracking.uri"


@pytest.fixture(autouse=True)
def no_file_store_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW, raising=False)


def file_store_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def test_mlflow_refuses_the_file_store_without_the_opt_in(tmp_path: Path) -> None:
    # The premise of the decision: without prepare_tracking_uri the ADR default fails.
    with pytest.raises(MlflowException, match="maintenance mode"):
        MlflowClient((tmp_path / "mlruns").as_uri()).search_experiments()


def test_file_uri_works_after_prepare_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri = (tmp_path / "mlruns").as_uri()
    caplog.set_level(logging.WARNING, logger=LOGGER)

    prepared = prepare_tracking_uri(uri)
    assert prepare_tracking_uri(uri) == prepared == uri  # second call: no second warning

    assert os.environ[ALLOW] == "true"
    warnings = file_store_warnings(caplog)
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert f"tracking_uri {uri} uses MLflow's file store" in message
    assert "enabled it for this process (MLFLOW_ALLOW_FILE_STORE=true)" in message
    assert (
        f"`mlflow migrate-filestore --source {tmp_path / 'mlruns'} "
        "--target sqlite:///mlflow.db`" in message
    )

    client = MlflowClient(prepared)
    experiment_id = client.create_experiment("file-store-check")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "total_cost_usd", 0.0023)
    client.set_terminated(run.info.run_id)
    stored = client.get_run(run.info.run_id)
    assert stored.data.metrics == {"total_cost_usd": 0.0023}
    assert stored.info.status == "FINISHED"
    assert (tmp_path / "mlruns" / experiment_id / run.info.run_id).is_dir()


def test_adr_relative_uri_lands_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # 'file://./mlruns' parses with '.' as the host: unresolved, MLflow writes to /mlruns.
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    prepared = prepare_tracking_uri("file://./mlruns")
    assert prepared == (tmp_path / "mlruns").as_uri()
    assert len(file_store_warnings(caplog)) == 1
    assert f"--source {tmp_path / 'mlruns'} " in file_store_warnings(caplog)[0].getMessage()

    experiment_id = MlflowClient(prepared).create_experiment("relative")
    assert (tmp_path / "mlruns" / experiment_id / "meta.yaml").is_file()


@pytest.mark.parametrize(
    ("uri", "relative"),
    [("file://./a/b", "a/b"), ("file://../up", "../up"), ("file://.", ".")],
)
def test_relative_file_uris_resolve_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str, relative: str
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    assert prepare_tracking_uri(uri) == (workdir / relative).resolve().as_uri()


def test_explicit_user_choice_is_respected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    uri = (tmp_path / "mlruns").as_uri()
    for value in ("false", "1"):
        monkeypatch.setenv(ALLOW, value)
        assert prepare_tracking_uri(uri) == uri
        assert os.environ[ALLOW] == value
    assert file_store_warnings(caplog) == []


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:///mlflow.db",
        "postgresql://user:pass@host/db",
        "http://localhost:5000",
        "https://user:token@host",
        "databricks",
        "databricks://workspace",
    ],
)
def test_other_backends_pass_through_untouched(uri: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert not is_file_store(uri)
    assert prepare_tracking_uri(uri) == uri
    assert ALLOW not in os.environ
    assert file_store_warnings(caplog) == []


def test_plain_paths_are_file_stores(tmp_path: Path) -> None:
    assert is_file_store("./mlruns")
    assert is_file_store("file:///tmp/mlruns")
    assert prepare_tracking_uri(str(tmp_path / "runs")) == str(tmp_path / "runs")
    assert os.environ[ALLOW] == "true"


def test_warning_never_prints_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file URI with userinfo is odd but possible; the log line must still mask it.
    monkeypatch.setattr(tracking, "_warned", set())
    caplog.set_level(logging.WARNING, logger=LOGGER)
    prepare_tracking_uri(f"file://user:S3cr3t@localhost{tmp_path}/mlruns")
    assert "S3cr3t" not in caplog.text
    assert "user:***@localhost" in caplog.text
