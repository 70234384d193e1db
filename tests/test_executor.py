"""The config-driven runner with observability off: demo model, graph, retries, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import typer
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from pydantic import BaseModel
from typer.testing import CliRunner

from configurable_agents.commands import run_cmd
from configurable_agents.config import LLMConfig
from configurable_agents.config.workflow import WorkflowConfig, load_workflow, parse_workflow
from configurable_agents.runtime import (
    DemoChatModel,
    NodeOutputError,
    ProviderError,
    WorkflowInputError,
    WorkflowTimeoutError,
    create_chat_model,
    run_workflow_from_config,
)
from configurable_agents.runtime.executor import output_model, schema_instruction
from configurable_agents.tools import calculator, web_search

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class Recorder(BaseCallbackHandler):
    """Collects the callback events the MLflow handler would see."""

    def __init__(self) -> None:
        self.chain_meta: dict[str, dict[str, Any]] = {}
        self.root_meta: dict[str, Any] = {}
        self.custom: list[tuple[str, Any]] = []
        self.prompts: list[list[BaseMessage]] = []
        self.tools: list[str] = []

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: Any = None,
        **kwargs: Any,
    ) -> None:
        metadata = metadata or {}
        if parent_run_id is None:
            self.root_meta = metadata
        elif "langgraph_node" in metadata and kwargs.get("name") == metadata["langgraph_node"]:
            self.chain_meta[metadata["langgraph_node"]] = metadata

    def on_chat_model_start(
        self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.prompts.append(messages[0])

    def on_tool_start(self, serialized: Any, input_str: str, **kwargs: Any) -> None:
        self.tools.append(serialized.get("name", ""))

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.custom.append((name, data))


def offline(workflow: WorkflowConfig) -> WorkflowConfig:
    """The workflow with observability off (these tests need no MLflow)."""
    return workflow.model_copy(
        update={"config": workflow.config.model_copy(update={"observability": None})}
    )


def article_writer(version: str = "") -> WorkflowConfig:
    name = f"article_writer{'_' + version if version else ''}.yaml"
    return offline(load_workflow(EXAMPLES / name, env=False))


def one_node(outputs: str = "[article, word_count]", max_retries: int = 2) -> WorkflowConfig:
    return parse_workflow(
        {
            "flow": {"name": "one", "version": "0.1.0"},
            "state": {
                "fields": {
                    "topic": {"required": True},
                    "article": {"type": "str"},
                    "word_count": {"type": "int", "default": 0},
                }
            },
            "nodes": [
                {
                    "id": "write",
                    "prompt": "Write about {state.topic}",
                    "outputs": json.loads(
                        outputs.replace("[", '["').replace(", ", '", "').replace("]", '"]')
                    ),
                }
            ],
            "edges": [{"from": "START", "to": "write"}, {"from": "write", "to": "END"}],
            "config": {"execution": {"timeout": 30, "max_retries": max_retries}},
        }
    )


def fake_factory(*replies: str):
    model = GenericFakeChatModel(messages=iter([AIMessage(r) for r in replies]))
    return lambda llm: model


# ---------------------------------------------------------------- demo model


def test_demo_model_reports_usage_and_model_name_of_the_configured_model() -> None:
    model = DemoChatModel(model="gemini-2.5-flash", temperature=0.3)
    prompt = "Explain observability for LLM apps in about 40 words."
    reply = model.invoke([HumanMessage(prompt)])
    again = model.invoke([HumanMessage(prompt)])
    assert reply.content == again.content  # deterministic
    assert 35 <= len(reply.text.split()) <= 40
    assert reply.usage_metadata == {
        "input_tokens": math.ceil(len(prompt) / 4),
        "output_tokens": math.ceil(len(reply.text) / 4),
        "total_tokens": math.ceil(len(prompt) / 4) + math.ceil(len(reply.text) / 4),
    }
    assert reply.response_metadata["model_name"] == "gemini-2.5-flash"
    ls = model._get_ls_params()
    assert (ls["ls_model_name"], ls["ls_provider"], ls["ls_temperature"]) == (
        "gemini-2.5-flash",
        "google_genai",
        0.3,
    )
    assert DemoChatModel(model="gpt-4o-mini")._get_ls_params()["ls_provider"] == "openai"
    assert DemoChatModel(model="claude-haiku-4-5")._get_ls_params()["ls_provider"] == "anthropic"


def test_demo_model_shorter_prompt_asks_cost_fewer_tokens() -> None:
    model = DemoChatModel()
    long = model.invoke("Write about caching in about 300 words.")
    short = model.invoke("Write about caching in about 100 words.")
    assert long.usage_metadata["output_tokens"] > 2 * short.usage_metadata["output_tokens"]
    bullets = model.invoke("List 3 bullet points about caching.").text.splitlines()
    assert len(bullets) == 3 and all(line.startswith("- ") for line in bullets)


def test_demo_model_calls_each_bound_tool_once_then_answers() -> None:
    model = DemoChatModel(model="claude-haiku-4-5").bind_tools([calculator, web_search])
    question = HumanMessage("What is 52 * 7? Also search for leap weeks.")
    first = model.invoke([question])
    assert first.content == ""
    assert [(c["name"], c["args"]) for c in first.tool_calls] == [
        ("calculator", {"expression": "52 * 7"}),
        ("web_search", {"query": "What is 52 * 7? Also search for"}),  # first 8 words
    ]
    results = [
        ToolMessage(
            calculator.invoke(first.tool_calls[0]["args"]),
            name="calculator",
            tool_call_id=first.tool_calls[0]["id"],
        ),
        ToolMessage(
            "Search results (offline demo data):\n1. leap weeks: rare",
            name="web_search",
            tool_call_id=first.tool_calls[1]["id"],
        ),
    ]
    final = model.invoke([question, first, *results])
    assert final.tool_calls == []
    assert final.text.startswith(
        "calculator returned 364; web_search returned 1. leap weeks: rare."
    )


def test_demo_model_emits_json_valid_for_the_output_schema() -> None:
    wf = article_writer()
    model_cls = output_model(wf, wf.node("write"))
    assert model_cls is not None
    prompt = "Write about tides in about 50 words." + schema_instruction(model_cls)
    reply = DemoChatModel().invoke(prompt)
    parsed = model_cls.model_validate_json(reply.text)
    assert isinstance(parsed, BaseModel)
    assert parsed.word_count == len(parsed.article.split()) == 50  # type: ignore[attr-defined]


# ---------------------------------------------------------------- executor


def test_article_writer_runs_on_the_demo_model_with_observability_off() -> None:
    recorder = Recorder()
    wf = article_writer()
    result = run_workflow_from_config(
        wf, {"topic": "tidal power"}, demo=True, metadata={"user_id": "alice"}, callbacks=[recorder]
    )
    out = result.outputs
    assert set(out) == {"topic", "research", "article", "word_count"}
    assert out["topic"] == "tidal power"
    assert out["research"].startswith("web_search returned 1. tidal power:")
    assert "tidal power" in out["article"]
    assert out["word_count"] == len(out["article"].split()) == 350
    assert (result.run_id, result.summary, result.demo) == (None, None, True)
    assert result.node_outputs == {k: out[k] for k in ("research", "article", "word_count")}
    assert recorder.tools == ["web_search"]
    # What the MLflow handler is told, through metadata only.
    assert recorder.root_meta["workflow_name"] == "article_writer"
    assert recorder.root_meta["workflow_version"] == "1.0.0"
    assert recorder.root_meta["user_id"] == "alice"
    assert recorder.root_meta["ca_tags"] == {"demo_model": "true"}
    assert recorder.root_meta["ca_params"] == {
        "global_model": "gemini-2.5-flash",
        "global_temperature": 0.7,
        "global_provider": "demo",
        "prompts_sha": wf.prompts_sha,
    }
    write = recorder.chain_meta["write"]
    assert write["ca_node_params"] == {
        "node_model": "gemini-2.5-flash",
        "node_temperature": 0.7,
        "tools": [],
        "prompt_template_sha": wf.node("write").prompt_template_sha,
    }
    assert write["ca_node_artifacts"] == {"prompt_template.txt": wf.node("write").prompt}
    assert recorder.chain_meta["research"]["ca_node_params"]["tools"] == ["web_search"]
    assert recorder.custom == [("ca_node_metrics", {"validation_failures": 0})] * 2


def test_v2_prompts_produce_a_shorter_article() -> None:
    v1 = run_workflow_from_config(article_writer(), {"topic": "tides"}, demo=True)
    v2 = run_workflow_from_config(article_writer("v2"), {"topic": "tides"}, demo=True)
    assert v2.outputs["word_count"] == 180 < v1.outputs["word_count"]
    assert v2.outputs["research"].count("\n- ") == 2  # 3 bullets after the tool summary


def test_invalid_output_is_fed_back_and_counted() -> None:
    recorder = Recorder()
    factory = fake_factory(
        "Sure! Here is your article.",
        '{"article": "Tides rise.", "word_count": "many"}',
        '```json\n{"article": "Tides rise and fall.", "word_count": 4}\n```',
    )
    result = run_workflow_from_config(
        one_node(), {"topic": "tides"}, chat_model_factory=factory, callbacks=[recorder]
    )
    assert result.outputs == {"topic": "tides", "article": "Tides rise and fall.", "word_count": 4}
    assert recorder.custom == [("ca_node_metrics", {"validation_failures": 2})]
    third_call = recorder.prompts[2]
    assert [type(m).__name__ for m in third_call] == [
        "HumanMessage",
        "AIMessage",
        "HumanMessage",
        "AIMessage",
        "HumanMessage",
    ]
    assert third_call[2].content == (
        "Your reply was invalid: the reply contains no JSON object. Reply again, fixing this. "
        "Respond with only the JSON object."
    )
    assert third_call[4].content.startswith(
        "Your reply was invalid: field 'word_count': Input should be a valid integer"
    )


def test_output_still_invalid_after_max_retries_fails_the_node() -> None:
    recorder = Recorder()
    factory = fake_factory("no", "still no", "never")
    with pytest.raises(NodeOutputError) as info:
        run_workflow_from_config(
            one_node(max_retries=1),
            {"topic": "tides"},
            chat_model_factory=factory,
            callbacks=[recorder],
        )
    assert str(info.value) == (
        "node 'write': output failed validation 2 times (max_retries=1); "
        "last error: the reply contains no JSON object"
    )
    assert recorder.custom == [("ca_node_metrics", {"validation_failures": 2})]
    assert len(recorder.prompts) == 2  # a validation failure is not retried by RetryPolicy


def test_plain_text_output_and_empty_reply_retry() -> None:
    recorder = Recorder()
    result = run_workflow_from_config(
        one_node("[article]"),
        {"topic": "tides"},
        chat_model_factory=fake_factory("  ", " Tides. "),
        callbacks=[recorder],
    )
    assert result.outputs["article"] == "Tides."
    assert recorder.custom == [("ca_node_metrics", {"validation_failures": 1})]


def test_inputs_are_checked_and_coerced() -> None:
    wf = one_node()
    with pytest.raises(WorkflowInputError) as info:
        run_workflow_from_config(wf, {}, demo=True)
    assert str(info.value) == "missing required input 'topic'; pass e.g. --input topic=..."
    with pytest.raises(
        WorkflowInputError,
        match="unknown input 'topik'; state fields are: topic, article, word_count",
    ):
        run_workflow_from_config(wf, {"topic": "x", "topik": "y"}, demo=True)
    with pytest.raises(WorkflowInputError, match="input 'word_count': Input should be a valid"):
        run_workflow_from_config(wf, {"topic": "x", "word_count": "lots"}, demo=True)
    wf_desc = article_writer()
    with pytest.raises(WorkflowInputError, match=r"'topic' \(The topic to research and write"):
        run_workflow_from_config(wf_desc, {"research": "x"}, demo=True)


def test_fan_out_and_join_run_every_branch_once() -> None:
    recorder = Recorder()
    wf = parse_workflow(
        {
            "flow": {"name": "fan"},
            "state": {"fields": {"q": {"required": True}, "pro": {}, "con": {}, "verdict": {}}},
            "nodes": [
                {"id": "pros", "prompt": "Pros of {state.q} in 10 words", "outputs": ["pro"]},
                {"id": "cons", "prompt": "Cons of {state.q} in 10 words", "outputs": ["con"]},
                {
                    "id": "judge",
                    "prompt": "Weigh {state.pro} against {state.con} in 10 words",
                    "outputs": ["verdict"],
                    "llm": {"model": "gpt-4o-mini"},
                },
            ],
            "edges": [
                {"from": "START", "to": ["pros", "cons"]},
                {"from": ["pros", "cons"], "to": "judge"},
                {"from": "judge", "to": "END"},
            ],
            "config": {"llm": {"provider": "demo"}},
        }
    )
    result = run_workflow_from_config(wf, {"q": "remote work"}, callbacks=[recorder])
    assert all(result.outputs[k] for k in ("pro", "con", "verdict"))
    assert result.demo  # provider: demo tags the run even without --demo
    assert len(recorder.prompts) == 3
    judge_prompt = recorder.prompts[2][0].content
    assert result.outputs["pro"] in judge_prompt and result.outputs["con"] in judge_prompt
    assert recorder.chain_meta["judge"]["ca_node_params"]["node_model"] == "gpt-4o-mini"


def test_workflow_timeout_stops_before_the_next_model_call() -> None:
    wf = one_node()
    wf = wf.model_copy(
        update={
            "config": wf.config.model_copy(
                update={"execution": wf.config.execution.model_copy(update={"timeout": 1e-9})}
            )
        }
    )
    with pytest.raises(WorkflowTimeoutError, match="node 'write': the workflow ran past"):
        run_workflow_from_config(wf, {"topic": "x"}, demo=True)


# ---------------------------------------------------------------- providers


def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY", "CONFIGURABLE_AGENTS_DEMO"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ProviderError) as info:
        create_chat_model(LLMConfig(provider="google"))
    assert str(info.value) == (
        "provider 'google' needs an API key: set GOOGLE_API_KEY or GEMINI_API_KEY "
        "(or pass --demo / set CONFIGURABLE_AGENTS_DEMO=1 to run offline)"
    )
    with pytest.raises(ProviderError, match="needs an API key: set OPENAI_API_KEY"):
        create_chat_model(LLMConfig(provider="openai", model="gpt-4o-mini"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = create_chat_model(LLMConfig(provider="openai", model="gpt-4o-mini"), timeout=5)
    assert type(model).__name__ == "ChatOpenAI" and model.max_retries == 0


def test_demo_env_var_switches_every_provider_to_the_demo_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CONFIGURABLE_AGENTS_DEMO", "1")
    result = run_workflow_from_config(article_writer(), {"topic": "kelp"})
    assert result.demo and result.outputs["word_count"] == 350
    with pytest.raises(ProviderError):
        run_workflow_from_config(article_writer(), {"topic": "kelp"}, demo=False)


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    run_cmd.register(app)
    return app


@pytest.fixture
def offline_file(tmp_path: Path) -> Path:
    text = (EXAMPLES / "article_writer.yaml").read_text(encoding="utf-8")
    text = text.replace("      enabled: true", "      enabled: false")
    path = tmp_path / "writer.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_run_text_and_json(
    cli: typer.Typer, offline_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONFIGURABLE_AGENTS_DEMO", raising=False)
    runner = CliRunner()
    res = runner.invoke(cli, ["run", str(offline_file), "--input", "topic=kelp forests", "--demo"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("== research ==\nweb_search returned 1. kelp forests:")
    assert "\n== article ==\n" in res.output and "\n== word_count ==\n350\n" in res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("article_writer 1.0.0: ") and "observability off" in last
    assert last.endswith("[demo model: estimated cost, no real spend]")

    inputs = offline_file.parent / "in.json"
    inputs.write_text(json.dumps({"topic": "kelp forests"}), encoding="utf-8")
    res = runner.invoke(
        cli, ["run", str(offline_file), "--input-file", str(inputs), "--output", "json", "--demo"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["workflow"] == {"name": "article_writer", "version": "1.0.0"}
    assert data["outputs"]["word_count"] == 350
    assert data["run"]["mlflow_run_id"] is None and data["run"]["demo_model"] is True


def test_cli_run_reports_missing_inputs_and_keys(
    cli: typer.Typer, offline_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "CONFIGURABLE_AGENTS_DEMO"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    res = runner.invoke(cli, ["run", str(offline_file), "--demo"])
    assert res.exit_code == 2
    assert (
        "missing required input 'topic' (The topic to research and write about); pass e.g. "
        "--input topic=..." in res.output
    )
    res = runner.invoke(cli, ["run", str(offline_file), "-i", "topic=x"])
    assert res.exit_code == 2
    assert "Provider not available" in res.output and "GOOGLE_API_KEY" in res.output


def test_cli_validate(cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "test")
    runner = CliRunner()
    res = runner.invoke(cli, ["validate", str(EXAMPLES / "article_writer.yaml")])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == (
        f"OK {EXAMPLES / 'article_writer.yaml'}: article_writer 1.0.0, 2 nodes (research, write), "
        "required inputs: topic, observability: mlflow on (sqlite:///mlflow.db, experiment "
        "article_writer)"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "article_writer.yaml").read_text().replace("{state.research}", "{state.notes}")
    )
    res = runner.invoke(cli, ["validate", str(bad)])
    assert res.exit_code == 1
    assert "nodes.1.prompt: node 'write': prompt references unknown state field 'notes'" in (
        " ".join(res.output.split())
    )
