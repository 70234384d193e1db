"""Every example end to end into a real sqlite MLflow store, then MLflow's contents checked."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from configurable_agents import demo
from configurable_agents.config import MLFlowConfig, ObservabilityConfig
from configurable_agents.config.workflow import WorkflowConfig, load_workflow, parse_workflow
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.runtime import run_workflow_from_config
from configurable_agents.runtime.summary import SummarySink

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def to_store(wf: WorkflowConfig, tracking_uri: str, experiment: str) -> WorkflowConfig:
    """The workflow logging to the test's store and experiment."""
    mlflow_cfg = MLFlowConfig(enabled=True, tracking_uri=tracking_uri, experiment_name=experiment)
    config = wf.config.model_copy(update={"observability": ObservabilityConfig(mlflow=mlflow_cfg)})
    return wf.model_copy(update={"config": config})


def example(name: str, tracking_uri: str, experiment: str) -> WorkflowConfig:
    return to_store(load_workflow(EXAMPLES / name, env=False), tracking_uri, experiment)


def children(client: MlflowClient, parent: Run) -> dict[str, Run]:
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    return {r.info.run_name: r for r in runs}


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def artifact_text(client: MlflowClient, run_id: str, path: str, tmp_path: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp_path))).read_text("utf-8")


def test_article_writer_logs_the_adr_layout(
    mlflow_store: str, experiment_name: str, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    wf = example("article_writer.yaml", mlflow_store, experiment_name)
    result = run_workflow_from_config(
        wf, {"topic": "tidal power"}, demo=True, metadata={"user_id": "alice", "team": "docs"}
    )
    assert result.run_id is not None and result.summary is not None
    parent = mlflow_client.get_run(result.run_id)
    params, tags, metrics = parent.data.params, parent.data.tags, parent.data.metrics
    assert {
        k: params[k]
        for k in (
            "workflow_name",
            "workflow_version",
            "global_model",
            "global_temperature",
            "prompts_sha",
            "global_provider",
        )
    } == {
        "workflow_name": "article_writer",
        "workflow_version": "1.0.0",
        "global_model": "gemini-2.5-flash",
        "global_temperature": "0.7",
        "prompts_sha": wf.prompts_sha,
        "global_provider": "demo",
    }
    assert tags["demo_model"] == "true"
    assert (tags["user_id"], tags["team"], tags["status"]) == ("alice", "docs", "FINISHED")
    assert parent.info.status == "FINISHED"
    assert metrics["node_count"] == 2 and metrics["status"] == 1
    # research: tool call + answer; write: one JSON answer.
    assert metrics["llm_calls"] == 3
    assert metrics["total_cost_usd"] > 0  # priced as gemini-2.5-flash
    assert result.summary.input_tokens == metrics["total_input_tokens"] > 0
    assert result.summary.output_tokens == metrics["total_output_tokens"] > 0
    assert result.summary.cost_usd == pytest.approx(metrics["total_cost_usd"])

    nodes = children(mlflow_client, parent)
    assert set(nodes) == {"node_research", "node_write"}
    for node_id, tools in (("research", ["web_search"]), ("write", [])):
        run = nodes[f"node_{node_id}"]
        p = run.data.params
        assert p["node_id"] == node_id
        assert p["node_model"] == "gemini-2.5-flash"
        assert json.loads(p["tools"]) == tools
        assert p["prompt_template_sha"] == wf.node(node_id).prompt_template_sha
        assert run.data.metrics["validation_failures"] == 0
        assert run.data.metrics["input_tokens"] > 0
        assert run.data.tags["demo_model"] == "true"
        template = artifact_text(mlflow_client, run.info.run_id, "prompt_template.txt", tmp_path)
        assert template == wf.node(node_id).prompt
    prompt = artifact_text(mlflow_client, nodes["node_write"].info.run_id, "prompt.txt", tmp_path)
    assert "Based on this research about tidal power:" in prompt


def test_versions_share_a_handler_and_are_told_apart(
    mlflow_store: str, experiment_name: str, mlflow_client: MlflowClient
) -> None:
    v1 = example("article_writer.yaml", mlflow_store, experiment_name)
    v2 = example("article_writer_v2.yaml", mlflow_store, experiment_name)
    assert v1.config.mlflow is not None
    handler = MLflowCallbackHandler(
        v1.config.mlflow, workflow_name="article_writer", workflow_version="1.0.0",
        sinks=[SummarySink()],  # a shared handler gives summaries when it keeps them
    )
    try:
        r1 = run_workflow_from_config(v1, {"topic": "kelp"}, handler=handler, demo=True)
        r2 = run_workflow_from_config(v2, {"topic": "kelp"}, handler=handler, demo=True)
    finally:
        handler.close()
    assert r1.run_id and r2.run_id and r1.run_id != r2.run_id
    p1, p2 = (mlflow_client.get_run(r.run_id).data.params for r in (r1, r2))
    assert (p1["workflow_version"], p2["workflow_version"]) == ("1.0.0", "2.0.0")
    assert (p1["prompts_sha"], p2["prompts_sha"]) == (v1.prompts_sha, v2.prompts_sha)
    assert p1["prompts_sha"] != p2["prompts_sha"]
    assert r1.summary and r2.summary
    assert r2.summary.output_tokens < r1.summary.output_tokens


def test_validation_failures_reach_the_node_run(
    mlflow_store: str, experiment_name: str, mlflow_client: MlflowClient
) -> None:
    wf = to_store(
        parse_workflow(
            {
                "flow": {"name": "checked", "version": "0.1.0"},
                "state": {"fields": {"topic": {"required": True}, "n": {"type": "int"}}},
                "nodes": [
                    {"id": "count", "prompt": "How many words in {state.topic}?", "outputs": ["n"]}
                ],
                "edges": [{"from": "START", "to": "count"}, {"from": "count", "to": "END"}],
                "config": {"llm": {"model": "gpt-4o-mini"}},
            }
        ),
        mlflow_store,
        experiment_name,
    )
    usage = {"input_tokens": 20, "output_tokens": 5, "total_tokens": 25}
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    "three", usage_metadata=usage, response_metadata={"model_name": "gpt-4o-mini"}
                ),
                AIMessage(
                    '{"n": 3}',
                    usage_metadata=usage,
                    response_metadata={"model_name": "gpt-4o-mini"},
                ),
            ]
        )
    )
    result = run_workflow_from_config(
        wf, {"topic": "one two three"}, chat_model_factory=lambda llm: model
    )
    assert result.outputs["n"] == 3 and not result.demo
    parent = mlflow_client.get_run(result.run_id)
    assert "demo_model" not in parent.data.tags
    node = children(mlflow_client, parent)["node_count"]
    assert node.data.metrics["validation_failures"] == 1
    assert node.data.metrics["input_tokens"] == 40
    assert parent.data.metrics["total_input_tokens"] == 40


def test_langgraph_app_example(
    mlflow_store: str, experiment_name: str, mlflow_client: MlflowClient
) -> None:
    run_id = load_script("langgraph_app").main(mlflow_store, experiment_name)
    assert run_id is not None
    parent = mlflow_client.get_run(run_id)
    assert parent.data.params["workflow_name"] == "support_ticket"
    assert parent.data.params["global_model"] == "gpt-4o-mini"
    assert (parent.data.tags["demo_model"], parent.data.tags["user_id"]) == ("true", "alice")
    nodes = children(mlflow_client, parent)
    assert set(nodes) == {"node_classify", "node_reply"}
    assert {r.data.params["node_model"] for r in nodes.values()} == {"gpt-4o-mini"}
    assert parent.data.metrics["total_cost_usd"] > 0


def test_react_agent_example(
    mlflow_store: str, experiment_name: str, mlflow_client: MlflowClient
) -> None:
    run_id = load_script("react_agent").main(mlflow_store, experiment_name)
    assert run_id is not None
    parent = mlflow_client.get_run(run_id)
    assert parent.data.tags["demo_model"] == "true"
    assert parent.data.params["global_model"] == "claude-haiku-4-5"
    runs = mlflow_client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    # version="v2" agents send each tool call to its own `tools` task: two tools, two runs.
    assert sorted(r.info.run_name for r in runs) == [
        "node_agent",
        "node_agent",
        "node_tools",
        "node_tools",
    ]
    assert parent.data.metrics["llm_calls"] == 2


def test_demo_runs_both_versions_and_reports_from_mlflow(
    mlflow_store: str, experiment_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    results = demo.run_demo(mlflow_store, experiment_name, runs=1)
    assert [(r.workflow_version, r.demo) for r in results] == [("1.0.0", True), ("2.0.0", True)]
    assert all(r.summary is not None for r in results)
    demo.print_reports(mlflow_store, experiment_name)
    out = capsys.readouterr().out
    assert "report costs" in out and "report compare" in out
    for version in ("1.0.0", "2.0.0"):
        assert version in out
    total = sum(r.summary.cost_usd for r in results if r.summary)
    assert f"${total:.4f}" in out  # the TOTAL row of the cost report
    assert "Per node" in out and "research" in out and "write" in out
