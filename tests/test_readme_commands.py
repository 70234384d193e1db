"""The newcomer's path (issue #29): after the demo, the README's commands work as printed.

The commands are parsed from README.md's "Command line" block, so the README cannot drift
from what works. The same store then checks the CLI convention: every command answers
``--format json`` with only JSON on stdout.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from configurable_agents import demo
from configurable_agents.cli import app

pytestmark = pytest.mark.slow  # the demo, then real processes: `make test` runs it

REPO = Path(__file__).resolve().parents[1]
_ENV_CLEARED = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "GOOGLE_API_KEY",
                "GEMINI_API_KEY", "CONFIGURABLE_AGENTS_DEMO")


def readme_commands() -> list[list[str]]:
    """The ``configurable-agents`` lines of README's "Command line" block, as argv lists."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Command line", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "configurable-agents", line
            commands.append(words[1:])
    return commands


def command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            paths += command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


@pytest.fixture(scope="module")
def after_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh checkout's root right after the demo: examples/ and the demo's mlflow.db."""
    root = tmp_path_factory.mktemp("newcomer")
    (root / "examples").symlink_to(REPO / "examples")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for var in _ENV_CLEARED:
            patch.delenv(var, raising=False)
        assert demo.main(["--runs", "1"]) == 0
        yield root


def test_readme_block_is_parsed() -> None:
    commands = readme_commands()
    assert len(commands) >= 9 and commands[2][:2] == ["report", "costs"]


@pytest.mark.parametrize("args", readme_commands(), ids=lambda a: " ".join(a[:2]))
def test_readme_command_works_after_the_demo(after_demo: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{args}: {result.output}"
    assert result.stdout.strip(), "the command printed nothing"
    assert "Traceback" not in result.output


def _a_workflow_run() -> list[str]:
    """A demo workflow run id (for commands that act on one run)."""
    from mlflow import MlflowClient

    from configurable_agents.names import Kind, Tag

    client = MlflowClient("sqlite:///mlflow.db")
    experiment = client.get_experiment_by_name("article_writer")
    run = client.search_runs([experiment.experiment_id],
                             f"tags.`{Tag.KIND}` = '{Kind.WORKFLOW}'", max_results=1)[0]
    return [run.info.run_id]


# One invocation per command against the demo's store; a new command must add its own
# (a callable when the arguments depend on the store).
JSON_INVOCATIONS: dict[tuple[str, ...], list[str] | Callable[[], list[str]]] = {
    ("run",): ["examples/article_writer.yaml", "-i", "topic=x", "--demo"],
    ("validate",): ["examples/article_writer.yaml"],
    ("report", "costs"): ["--group-by", "model"],
    ("report", "quality"): ["--since", "30d"],
    ("report", "compare"): ["-e", "article_writer", "--baseline",
                            "params.workflow_version = '1.0.0'", "--candidate",
                            "params.workflow_version = '2.0.0'"],
    ("eval",): ["examples/qa_assistant.yaml", "-d", "examples/qa_dataset.jsonl", "--demo"],
    ("prices",): ["gemini-2.5-pro"],
    ("cleanup",): ["--older-than-days", "90", "--dry-run"],
    ("sync",): [],
    ("config", "validate"): ["examples/article_writer.yaml"],
    ("feedback",): lambda: [*_a_workflow_run(), "thumbs_up", "true"],
    ("dataset", "export"): ["-e", "article_writer"],
}


def test_every_command_has_a_json_invocation() -> None:
    paths = set(command_paths(typer.main.get_command(app)))
    assert paths == set(JSON_INVOCATIONS), (
        "add the new command to JSON_INVOCATIONS (it must answer --format json)")


@pytest.mark.parametrize("path", list(JSON_INVOCATIONS), ids=" ".join)
def test_every_command_answers_format_json(after_demo: Path, path: tuple[str, ...]) -> None:
    args = JSON_INVOCATIONS[path]
    args = args() if callable(args) else args
    result = CliRunner().invoke(app, [*path, *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # only JSON on stdout: notes and progress go to stderr


def _cli(cwd: Path, *args: str, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in _ENV_CLEARED}
    environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.run([sys.executable, "-m", "configurable_agents.cli", *args], cwd=cwd,
                          env={**environ, **(env or {})}, capture_output=True, text=True,
                          timeout=240)


def test_eval_json_pipes_cleanly_and_quietly(after_demo: Path) -> None:
    """The README's eval with --format json in a real process: `| jq` gets only JSON."""
    done = _cli(after_demo, "eval", "examples/qa_assistant.yaml", "--dataset",
                "examples/qa_dataset.jsonl", "--demo", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metrics"]["accuracy"] > 0
    for noise in ("Evaluation completed", "\x1b[", "INFO", "UserWarning", "Evaluating:"):
        assert noise not in done.stdout + done.stderr, noise


def test_eval_without_a_provider_key_is_one_line_exit_2(after_demo: Path) -> None:
    done = _cli(after_demo, "eval", "examples/qa_assistant.yaml", "--dataset",
                "examples/qa_dataset.jsonl")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: provider 'google' needs an API key")


def test_help_and_version_import_no_mlflow(tmp_path: Path) -> None:
    """--help must not pay for MLflow (seconds) nor the report stack (numpy, pydantic: 0.5 s
    when `dataset` imported it at module level): commands import them when they run."""
    probe = ("import sys, configurable_agents.cli; "
             "print(sorted(m for m in ('mlflow', 'langchain_core', 'pandas', 'numpy', "
             "'pydantic', 'configurable_agents.reports') if m in sys.modules))")
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", probe], env=environ, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
    version = _cli(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("configurable-agents ")


def test_old_spellings_still_work_and_stay_hidden(after_demo: Path) -> None:
    runner = CliRunner()
    for args in (["run", "examples/article_writer.yaml", "-i", "topic=x", "--demo", "-o", "json"],
                 ["run", "examples/article_writer.yaml", "-i", "topic=x", "--demo", "--json"],
                 ["cleanup", "--older-than-days", "90", "--dry-run", "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        json.loads(result.stdout)
    help_text = runner.invoke(app, ["cleanup", "--help"]).stdout
    assert "--format" in help_text and "--json" not in help_text


def test_output_file_gets_the_data_stdout_stays_empty(after_demo: Path) -> None:
    result = CliRunner().invoke(app, ["prices", "gemini-2.5-pro", "-f", "csv", "-o", "p.csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert (after_demo / "p.csv").read_text().startswith("model,matched,source,provider,")
