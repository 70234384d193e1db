"""Prompt Registry and LoggedModel paths against a real ``mlflow server`` process.

What the MLflow UI's Prompts page and Agent versions page read: one registered prompt
per workflow node (a new version only when the text changes), prompt versions linked
to the runs that used them, and one LoggedModel per (workflow, version) that the
evaluation and example runs are linked to, with the evaluation metrics on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from configurable_agents.evaluation.dataset import Dataset, load_dataset
from configurable_agents.evaluation.prompts import prompt_name
from configurable_agents.evaluation.workflow_eval import evaluate_workflow
from configurable_agents.names import EvalMetric
from configurable_agents.scoring import Contains
from tests.servers import MlflowServer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# Three examples keep the server round trips short: v1 answers all, v2 misses q19 and q20.
SUBSET = ("q01", "q19", "q20")
LINKED_PROMPTS_TAG = "mlflow.linkedPrompts"  # MLflow's run tag behind "Registered prompts"



def _subset() -> Dataset:
    full = load_dataset(EXAMPLES / "qa_dataset.jsonl")
    return Dataset(name="qa_subset", source=full.source,
                   examples=tuple(e for e in full.examples if e.id in SUBSET))


def _run(server: MlflowServer, name: str):
    return evaluate_workflow(EXAMPLES / name, _subset(), [Contains()], demo=True,
                             tracking_uri=server.url, experiment="qa-server",
                             register_prompts=True)


def test_prompts_and_agent_versions_on_a_server(mlflow_server: MlflowServer) -> None:
    client = MlflowClient(mlflow_server.url)
    first = _run(mlflow_server, "qa_assistant.yaml")
    again = _run(mlflow_server, "qa_assistant.yaml")
    second = _run(mlflow_server, "qa_assistant_v2.yaml")
    name = prompt_name("qa_assistant", "answer")
    assert name == "qa_assistant.answer"

    # Prompt Registry: v1's text registered once (the rerun reuses it), v2's text is version 2.
    latest = client.load_prompt(f"prompts:/{name}@latest")
    assert latest.version == 2
    assert "answer only" in latest.template
    assert "step by step" in client.load_prompt(f"prompts:/{name}/1").template
    for result, version in ((first, 1), (again, 1), (second, 2)):
        for run_id in (result.run_id, result.examples[0].run_id):
            linked = json.loads(client.get_run(run_id).data.tags[LINKED_PROMPTS_TAG])
            assert linked == [{"name": name, "version": str(version)}]

    # Agent versions: one LoggedModel per workflow version, reused by the rerun.
    assert first.model_id == again.model_id != second.model_id
    models = {m.name: m for m in client.search_logged_models(
        experiment_ids=[first.experiment_id])}
    assert set(models) == {"qa_assistant-v1-0-0", "qa_assistant-v2-0-0"}
    model = client.get_logged_model(second.model_id)
    assert model.tags["workflow_version"] == "2.0.0"
    metrics = {m.key: m.value for m in model.metrics or []}
    assert metrics[EvalMetric.ACCURACY] == pytest.approx(1 / 3)
    run = client.get_run(second.run_id)
    assert [m.model_id for m in run.inputs.model_inputs] == [second.model_id]
    example_run = client.get_run(second.examples[0].run_id)
    assert [m.model_id for m in example_run.inputs.model_inputs] == [second.model_id]
