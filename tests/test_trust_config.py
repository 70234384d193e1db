"""Trust boundaries, round 3 (issue #26): config files.

A config file is shared (a workflow YAML in a repo, a ticket): ``config validate``
prints it with every secret masked, and an import path in it runs no code unless the
process opts in, and never a standard-library target such as ``os:system``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from configurable_agents.cli import app
from configurable_agents.config.masking import secret_key

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOKEN = "tok-9f8e7d6c5b4a"
PASSWORD = "hunter2-pw-77"
runner = CliRunner()


def test_config_validate_masks_every_secret_bearing_field(tmp_path: Path) -> None:
    path = tmp_path / "shared.yaml"
    path.write_text(f"""
config:
  observability:
    mlflow:
      enabled: true
      tracking_uri: "https://alice:{PASSWORD}@mlflow.example.com"
      tags: {{team: search, api_token: "{TOKEN}", clientSecret: "{TOKEN}x"}}
    otel:
      enabled: true
      endpoint: "https://otel:{PASSWORD}@collector.example.com:4318/v1/traces?token={TOKEN}"
      headers: {{authorization: "Bearer {TOKEN}", x-api-key: "{TOKEN}k", x-tenant: acme}}
      resource_attributes: {{deployment.environment: prod, db.password: "{PASSWORD}"}}
""", encoding="utf-8")
    result = runner.invoke(app, ["config", "validate", str(path), "--no-env"])
    assert result.exit_code == 0, result.stderr
    assert TOKEN not in result.stdout and PASSWORD not in result.stdout
    shown = json.loads(result.stdout)["observability"]
    otel = shown["otel"]
    assert otel["headers"] == {"authorization": "***", "x-api-key": "***", "x-tenant": "***"}
    assert otel["endpoint"] == ("https://otel:***@collector.example.com:4318/v1/traces?token=***")
    assert otel["resource_attributes"] == {"deployment.environment": "prod", "db.password": "***"}
    assert shown["mlflow"]["tracking_uri"] == "https://alice:***@mlflow.example.com"
    assert shown["mlflow"]["tags"] == {"team": "search", "api_token": "***", "clientSecret": "***"}
    # Names that merely contain the letters are not secrets: defaults stay readable.
    assert shown["mlflow"]["tag_metadata_keys"] == [] and shown["otel"]["enabled"] is True
    assert not secret_key("max_tokens") and secret_key("X-Auth-Token") and secret_key("apiKey")


def _shared_workflow(tmp_path: Path, custom: str, store: str = "sqlite:///unused.db",
                     experiment: str = "shared") -> Path:
    text = (EXAMPLES / "qa_assistant.yaml").read_text(encoding="utf-8")
    text = text.replace('      enabled: true\n      tracking_uri: "sqlite:///mlflow.db"\n'
                        "      experiment_name: qa_assistant\n",
                        f"      enabled: true\n      tracking_uri: \"{store}\"\n"
                        f"      experiment_name: \"{experiment}\"\n      redact_pii: true\n"
                        f"      redaction: {{custom: \"{custom}\"}}\n")
    assert "redaction:" in text
    path = tmp_path / "shared.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("custom", ["os:system", "subprocess:getoutput", "builtins:exec",
                                    "shutil:rmtree", "posix:system"])
def test_a_shared_yaml_naming_a_stdlib_callable_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, custom: str
) -> None:
    # Even an operator who opted in for these modules does not get them.
    monkeypatch.setenv("CONFIGURABLE_AGENTS_ALLOW_CONFIG_CODE", "os,subprocess,builtins,shutil")
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    path = _shared_workflow(tmp_path, custom)
    result = runner.invoke(app, ["run", str(path), "--demo", "--input",
                                 f"question=touch {marker}"])
    assert result.exit_code != 0
    assert "never loaded from a config file" in result.output
    assert not marker.exists()
    assert not (tmp_path / "unused.db").exists()


def _logged_text(store: str, experiment: str, tmp_path: Path) -> str:
    client = MlflowClient(store)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id], "tags.configurable_agents.kind = 'workflow'")
    inputs = Path(client.download_artifacts(run.info.run_id, "inputs.json", str(tmp_path)))
    return json.dumps([run.data.params, run.data.tags]) + inputs.read_text(encoding="utf-8")


def test_config_code_needs_the_operators_opt_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_store: str, experiment_name: str
) -> None:
    monkeypatch.delenv("CONFIGURABLE_AGENTS_ALLOW_CONFIG_CODE", raising=False)
    path = _shared_workflow(tmp_path, "tests.trusted_redactor:names", mlflow_store,
                            experiment_name)
    refused = runner.invoke(app, ["config", "validate", str(path), "--no-env"])
    assert refused.exit_code != 0
    assert "CONFIGURABLE_AGENTS_ALLOW_CONFIG_CODE" in refused.output
    monkeypatch.setenv("CONFIGURABLE_AGENTS_ALLOW_CONFIG_CODE", "tests.trusted_redactor")
    result = runner.invoke(app, ["run", str(path), "--demo", "--input",
                                 "question=Is Alice Smith at alice@example.com?"])
    assert result.exit_code == 0, result.output
    logged = _logged_text(mlflow_store, experiment_name, tmp_path)
    assert "alice@example.com" not in logged and "Alice Smith" not in logged
    assert "<PERSON>" in logged  # the opted-in function ran


def test_regex_detectors_from_config_need_no_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_store: str, experiment_name: str
) -> None:
    monkeypatch.delenv("CONFIGURABLE_AGENTS_ALLOW_CONFIG_CODE", raising=False)
    text = _shared_workflow(tmp_path, "x:y", mlflow_store, experiment_name).read_text(
        encoding="utf-8")
    text = text.replace('redaction: {custom: "x:y"}',
                        'redaction: {extra_patterns: {employee_id: "EMP-[0-9]{6}"}}')
    path = tmp_path / "regex.yaml"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["run", str(path), "--demo", "--input",
                                 "question=Who is EMP-123456?"])
    assert result.exit_code == 0, result.output
    logged = _logged_text(mlflow_store, experiment_name, tmp_path)
    assert "EMP-123456" not in logged and "<EMPLOYEE_ID>" in logged
