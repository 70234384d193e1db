"""``eval --judge PROVIDER:MODEL``: the LLM judge chosen on the command line.

A real ChatOpenAI pointed at the loopback provider stub grades the demo workflow's answers;
the judge's calls are their own runs, summed into ``judge_cost_usd``.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from configurable_agents.cli import app as cli
from configurable_agents.names import EvalMetric
from tests.test_online_eval import provider  # noqa: F401 - the stub fixture

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_eval_with_a_judge_from_the_cli(tmp_path: Path, mlflow_store: str, experiment_name: str,
                                        provider) -> None:  # noqa: F811
    rows = (EXAMPLES / "qa_dataset.jsonl").read_text().splitlines()[:2]
    dataset = tmp_path / "two.jsonl"
    dataset.write_text("\n".join(rows) + "\n")
    # Passes the France answer only: with contains both answers would be correct.
    provider.openai_reply = lambda body: (
        '{"verdict": "PASS", "rationale": "same fact"}'
        if "Paris" in str(body["messages"][-1]["content"])
        else '{"verdict": "FAIL", "rationale": "no"}')
    result = CliRunner().invoke(cli, [
        "eval", str(EXAMPLES / "qa_assistant.yaml"), "--dataset", str(dataset), "--demo",
        "--judge", "openai:gpt-4o-mini", "--judge-base-url", f"{provider.url}/v1",
        "--tracking-uri", mlflow_store, "--experiment", experiment_name, "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]  # stdout is the JSON document only
    assert metrics[EvalMetric.ACCURACY] == 0.5  # the judge alone decides correctness
    assert metrics[EvalMetric.JUDGE_COST_USD] > 0
    assert len([p for p, _ in provider.requests if p.endswith("/chat/completions")]) == 2


def test_bad_judge_spec_is_exit_2(tmp_path: Path, mlflow_store: str) -> None:
    for spec in ("gpt-4o-mini", "nosuch:model"):
        result = CliRunner().invoke(cli, [
            "eval", str(EXAMPLES / "qa_assistant.yaml"), "--dataset",
            str(EXAMPLES / "qa_dataset.jsonl"), "--demo", "--judge", spec,
            "--tracking-uri", mlflow_store])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: --judge")
