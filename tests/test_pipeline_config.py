"""The pipeline block and the config runner: every enabled sink, MLflow off included.

The issue's reproduction: a workflow YAML with ``mlflow: {enabled: false}`` and a JSONL
block, run with ``configurable-agents run FILE --demo``, must write its JSONL line (and
an OpenTelemetry span and a Prometheus sample when those blocks are on), and the summary
line must carry the facts' numbers without any MLflow run.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import typer
import yaml
from prometheus_client import generate_latest
from typer.testing import CliRunner

from configurable_agents.commands import run_cmd
from configurable_agents.config import pipeline_config
from configurable_agents.config.loader import load_global_config
from configurable_agents.config.schema import ObservabilityConfig
from configurable_agents.observability.sinks.prometheus.sink import current_metrics
from tests.otlp_receivers import HttpReceiver
from tests.prometheus_graphs import fresh_process_metrics

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _workflow_file(tmp_path: Path, observability: dict) -> Path:
    data = yaml.safe_load((EXAMPLES / "article_writer.yaml").read_text(encoding="utf-8"))
    data["config"]["observability"] = observability
    path = tmp_path / "writer.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_run_cli_writes_jsonl_span_and_prometheus_sample_with_mlflow_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_process_metrics(monkeypatch)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.jsonl"
    with HttpReceiver() as receiver:
        path = _workflow_file(tmp_path, {
            "mlflow": {"enabled": False},
            "jsonl": {"enabled": True, "path": str(out)},
            "otel": {"enabled": True, "endpoint": receiver.endpoint},
            "prometheus": {"enabled": True},
        })
        app = typer.Typer()
        run_cmd.register(app)
        res = CliRunner().invoke(app, ["run", str(path), "--input", "topic=kelp", "--demo"])
        assert res.exit_code == 0, res.output
        spans = receiver.received.snapshot()

    [line] = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert line["workflow_name"] == "article_writer" and line["status"] == "FINISHED"
    assert line["totals"]["input_tokens"] > 0 and line["totals"]["llm_calls"] >= 1
    assert any(s.name == "invoke_workflow article_writer" for s in spans)
    metrics = current_metrics()
    assert metrics is not None
    runs = metrics.registry.get_sample_value(
        "configurable_agents_workflow_runs_total",
        {"workflow": "article_writer", "workflow_version": "1.0.0", "status": "FINISHED"},
    )
    assert runs == 1
    assert "gen_ai_client_token_usage" in generate_latest(metrics.registry).decode()
    summary = res.output.strip().splitlines()[-1]
    tokens = f"tokens {line['totals']['input_tokens']} in / {line['totals']['output_tokens']} out"
    assert tokens in summary and "no MLflow run" in summary, summary
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_pipeline_keys_in_the_mlflow_block_still_work_and_warn_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pipeline_config, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = load_global_config({"observability": {
            "mlflow": {"enabled": False, "redact_pii": True, "queue_size": 7},
            "jsonl": {"enabled": True},
        }}, env=False)
        load_global_config({"observability": {"mlflow": {"redact_pii": True}}}, env=False)
    moved = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(moved) == 1 and "observability.pipeline" in str(moved[0].message)
    settings = config.observability.settings
    assert settings.redact_pii is True and settings.queue_size == 7


def test_the_pipeline_block_wins_over_old_mlflow_keys() -> None:
    config = ObservabilityConfig.model_validate({
        "pipeline": {"queue_size": 50, "sample_rate": 0.5},
        "mlflow": {"queue_size": 9, "flush_timeout_s": 3},
    })
    settings = config.settings
    assert settings.queue_size == 50 and settings.sample_rate == 0.5
    assert settings.flush_timeout_s == 3  # only set in the old place: carried over
    assert ObservabilityConfig().settings.queue_size == 1000


def test_a_typo_in_the_pipeline_block_fails_loudly() -> None:
    with pytest.raises(Exception, match="queue_sise"):
        load_global_config({"observability": {"pipeline": {"queue_sise": 3}}}, env=False)


def test_zero_code_flag_builds_every_sink_from_a_config_file(tmp_path: Path) -> None:
    """CONFIGURABLE_AGENTS_MLFLOW=true + CONFIGURABLE_AGENTS_CONFIG: the file's whole
    observability block (MLflow off, JSONL on) for a script that names no handler."""
    import os
    import subprocess
    import sys
    import textwrap

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "zero.jsonl"
    config = tmp_path / "observability.yaml"
    config.write_text(yaml.safe_dump({"config": {"observability": {
        "pipeline": {"flush_timeout_s": 60},
        "mlflow": {"enabled": False},
        "jsonl": {"enabled": True, "path": str(out)},
    }}}), encoding="utf-8")
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        from typing import TypedDict
        from langgraph.graph import END, START, StateGraph

        class S(TypedDict, total=False):
            text: str

        g = StateGraph(S)
        g.add_node("greet", lambda s: {"text": "hello"})
        g.add_edge(START, "greet")
        g.add_edge("greet", END)
        print(g.compile(name="zero").invoke({}))
    """), encoding="utf-8")
    env = {**os.environ, "CONFIGURABLE_AGENTS_MLFLOW": "true",
           "CONFIGURABLE_AGENTS_CONFIG": str(config),
           "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [line] = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert line["workflow_name"] == "zero" and line["nodes"][0]["node_id"] == "greet"
    assert not (tmp_path / "mlflow.db").exists()
