"""Prompt Registry reuse: evaluating two workflow versions twice registers two versions, not four.

A real sqlite store; the example workflows of `make demo` (qa_assistant v1 and v2).
"""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from configurable_agents.config.workflow import load_workflow
from configurable_agents.evaluation.prompts import prompt_name, register_workflow_prompts

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_rerun_reuses_each_text_version(mlflow_store: str) -> None:
    client = MlflowClient(mlflow_store)
    v1 = load_workflow(EXAMPLES / "qa_assistant.yaml")
    v2 = load_workflow(EXAMPLES / "qa_assistant_v2.yaml")
    # A name of its own: other tests in the session store register qa_assistant prompts too.
    v1.flow.name = v2.flow.name = "qa_reuse_test"
    seen = [register_workflow_prompts(client, wf)[0].version for wf in (v1, v2, v1, v2)]
    assert [int(v) for v in seen] == [1, 2, 1, 2]
    name = prompt_name("qa_reuse_test", v1.nodes[0].id)
    assert len(list(client.search_prompt_versions(name))) == 2
