"""Trust boundaries, round 3 (issue #26): what datasets and evaluation write.

Against a real sqlite MLflow store: with ``redact_pii`` everything an evaluation writes
is redacted; a tenant template resolves per tenant for the evaluation and judge runs;
``evaluate()`` leaves the app's MLflow globals alone; ``eval --tracking-uri sqlite:...``
keeps artifacts beside the database; the judge needs a structured verdict; dataset
errors are one line naming file and line.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import mlflow
import pytest
from langgraph.graph import END, START, StateGraph
from mlflow import MlflowClient
from mlflow.tracking import fluent
from typer.testing import CliRunner
from typing_extensions import TypedDict

from configurable_agents.cli import app as cli
from configurable_agents.evaluation import Contains, Dataset, LLMJudge, evaluate
from configurable_agents.evaluation.dataset import Example
from configurable_agents.evaluation.results import ExampleResult, summary_metrics
from configurable_agents.names import Artifact, EvalMetric, EvalRole, EvalTag, Kind, Tag
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.scoring import parse_verdict
from tests.fakes import UsageChatModel, reply

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EMAIL = "jane.doe@example.com"
API_KEY = "sk-" + "A1b2C3d4E5f6G7h8" * 3  # OpenAI-shaped
CARD = "4111 1111 1111 1111"  # Luhn-valid test Visa
SECRETS = (EMAIL, API_KEY, CARD, "4111111111111111")


class QA(TypedDict, total=False):
    question: str
    answer: str


def _echo_graph() -> Any:
    """A real LangGraph app whose answer repeats the question (so outputs carry the PII)."""
    model = UsageChatModel(messages=iter([reply(f"You said {EMAIL} and {API_KEY}", 50, 10)
                                          for _ in range(10)]))

    def answer(state: QA) -> dict[str, Any]:
        text = model.invoke(state["question"]).text
        return {"answer": f"{text}; card {CARD}"}

    graph = StateGraph(QA)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    return graph.compile(name="echo")


def _judge(*verdicts: str) -> LLMJudge:
    return LLMJudge(UsageChatModel(messages=iter([reply(v, 80, 5) for v in verdicts]),
                                   model_name="gpt-4o-mini"))


def _pii_dataset() -> Dataset:
    return Dataset.from_records([
        {"id": "a", "inputs": {"question": f"Mail {EMAIL} my key {API_KEY}"},
         "expected": f"card {CARD}"},
        {"id": "b", "inputs": {"question": f"Is {CARD} valid?"}, "expected": EMAIL},
    ], name="pii-rows")


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


def test_everything_evaluation_writes_goes_through_the_redactor(
    mlflow_store: str, experiment_name: str, tmp_path: Path
) -> None:
    handler = MLflowCallbackHandler({"enabled": True, "tracking_uri": mlflow_store,
                                     "experiment_name": experiment_name, "redact_pii": True})
    judge = _judge(json.dumps({"verdict": "PASS", "rationale": f"mentions {EMAIL}"}),
                   json.dumps({"verdict": "FAIL", "rationale": f"key {API_KEY} leaked"}))
    try:
        result = evaluate(_echo_graph(), _pii_dataset(), [judge, Contains()], handler=handler,
                          workflow_name="echo", workflow_version=f"v1 {EMAIL}")
    finally:
        handler.close()
    assert not result.notes, result.notes
    client = MlflowClient(mlflow_store)
    table = client.download_artifacts(result.run_id, Artifact.EVAL_RESULTS, str(tmp_path))
    text = Path(table).read_text(encoding="utf-8")
    assert "<EMAIL>" in text and "<CREDIT_CARD>" in text
    _no_secret(text)
    assessments = []
    for example in result.examples:
        assert example.trace_id
        assessments += client.get_trace(example.trace_id).info.assessments
    names = {a.name for a in assessments}
    assert {"expected_response", "llm_judge", "contains"} <= names
    _no_secret(repr([(a.name, a.value, a.rationale) for a in assessments]))
    run = client.get_run(result.run_id)
    _no_secret(json.dumps([run.data.params, run.data.tags, run.info.run_name]))
    assert result.model_id is not None
    model = client.get_logged_model(result.model_id)
    _no_secret(json.dumps([model.name, model.params, model.tags]))
    for example in result.examples:  # the example runs, as before: redacted by the handler
        example_run = client.get_run(example.run_id)
        _no_secret(json.dumps([example_run.data.params, example_run.data.tags]))


def test_prompt_registry_texts_are_redacted(
    mlflow_store: str, experiment_name: str, tmp_path: Path
) -> None:
    from configurable_agents.evaluation.workflow_eval import evaluate_workflow

    text = (EXAMPLES / "qa_assistant.yaml").read_text(encoding="utf-8")
    text = text.replace("You are a careful assistant.",
                        f"You are a careful assistant. Escalate to {EMAIL} with key {API_KEY}.")
    text = text.replace("\n  name: qa_assistant", f"\n  name: qa_{uuid.uuid4().hex[:8]}")
    workflow = tmp_path / "qa.yaml"
    workflow.write_text(text.replace("experiment_name: qa_assistant",
                                     "experiment_name: qa_assistant\n      redact_pii: true"),
                        encoding="utf-8")
    data = tmp_path / "d.jsonl"
    data.write_text('{"inputs": {"question": "Capital of France?"}, "expected": "Paris"}\n',
                    encoding="utf-8")
    result = evaluate_workflow(workflow, data, [Contains()], demo=True, tracking_uri=mlflow_store,
                               experiment=experiment_name, register_prompts=True)
    client = MlflowClient(mlflow_store, registry_uri=mlflow_store)
    name = text.split("\n  name: ", 1)[1].split("\n", 1)[0]
    prompt = client.load_prompt(f"prompts:/{name}.answer@latest")
    assert "<EMAIL>" in prompt.template
    _no_secret(prompt.template)
    assert result.run_id


def _app_state() -> tuple[Any, ...]:
    return (mlflow.get_tracking_uri(), fluent._get_experiment_id(),
            os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_EXPERIMENT_ID"),
            mlflow.active_run())


def test_tenant_evaluation_and_judge_runs_resolve_per_tenant_and_leave_app_globals(
    mlflow_store: str, experiment_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app has its own MLflow state: an active experiment, then another tracking URI.
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
        # set, then delete: monkeypatch then restores the variable as it was (absent),
        # also after mlflow.set_experiment below exported the app's experiment id into it
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    mlflow.set_tracking_uri(mlflow_store)
    app_experiment = mlflow.set_experiment(f"app-{experiment_name}").experiment_id
    app_uri = f"sqlite:////nonexistent-{uuid.uuid4().hex}/app.db"
    mlflow.set_tracking_uri(app_uri)
    try:
        before = _app_state()
        assert before[:2] == (app_uri, app_experiment)
        tenant = f"t{uuid.uuid4().hex[:8]}"
        template = f"{{tenant_id}}_{experiment_name[:20]}"
        handler = MLflowCallbackHandler({"enabled": True, "tracking_uri": mlflow_store,
                                         "experiment_name": template})
        try:
            result = evaluate(_echo_graph(), _pii_dataset(),
                              [_judge('{"verdict": "PASS"}', '{"verdict": "FAIL"}')],
                              handler=handler, workflow_name="echo", link_model=False,
                              metadata={"tenant_id": tenant})
        finally:
            handler.close()
        assert _app_state() == before
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        fluent._active_experiment_id = None
    client = MlflowClient(mlflow_store)
    expected = f"{tenant}_{experiment_name[:20]}"
    experiment = client.get_experiment(result.experiment_id)
    assert experiment.name == expected
    assert client.get_experiment_by_name(template) is None
    runs = client.search_runs([result.experiment_id],
                              f"tags.{EvalTag.EVAL_RUN_ID} = '{result.run_id}' and "
                              f"tags.`{Tag.KIND}` = '{Kind.WORKFLOW}'")
    roles = sorted(r.data.tags[EvalTag.EVAL_ROLE] for r in runs)
    assert roles == [EvalRole.EXAMPLE, EvalRole.EXAMPLE, EvalRole.JUDGE, EvalRole.JUDGE]
    quarantine = client.get_experiment_by_name("configurable_agents_quarantine")
    if quarantine is not None:
        assert not client.search_runs([quarantine.experiment_id],
                                      f"tags.{EvalTag.EVAL_RUN_ID} = '{result.run_id}'")


def test_eval_without_the_tenant_is_one_line_exit_2(tmp_path: Path, workdir: Path) -> None:
    workflow = tmp_path / "qa.yaml"
    workflow.write_text((EXAMPLES / "qa_assistant.yaml").read_text(encoding="utf-8").replace(
        "experiment_name: qa_assistant", 'experiment_name: "{tenant_id}_qa"'), encoding="utf-8")
    result = CliRunner().invoke(cli, ["eval", str(workflow), "--dataset",
                                      str(EXAMPLES / "qa_dataset.jsonl"), "--demo",
                                      "--tracking-uri", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "tenant_id" in result.stderr
    assert "Traceback" not in result.output


def test_eval_cli_keeps_artifacts_beside_the_sqlite_database(
    mlflow_store: str, experiment_name: str, workdir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"inputs": {"question": "Capital of France?"}, "expected": "Paris"}\n',
                    encoding="utf-8")
    result = CliRunner().invoke(cli, ["eval", str(EXAMPLES / "qa_assistant_v2.yaml"),
                                      "--dataset", str(data), "--demo", "--json",
                                      "--tracking-uri", mlflow_store, "-e", experiment_name])
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["run_id"]
    assert not (workdir / "mlruns").exists() and not (workdir / "mlflow.db").exists()
    store_dir = Path(mlflow_store.removeprefix("sqlite:///")).parent
    run = MlflowClient(mlflow_store).get_run(run_id)
    assert run.info.artifact_uri.startswith((store_dir / "mlartifacts").as_uri())


# ---- judge verdicts ---------------------------------------------------------------------------


def test_judge_needs_a_structured_verdict_and_counts_the_rest_apart() -> None:
    judge = _judge("The answer does not pass the check. FAIL",
                   '{"verdict": "PASS", "rationale": "same city"}',
                   "```json\n{\"verdict\": \"FAIL\", \"rationale\": \"wrong\"}\n```",
                   "Close enough.\nVERDICT: PASS",
                   "PASS", '{"verdict": "pass"}', "[" * 100_000)
    example = Example("q", {"question": "Capital of France?"}, "Paris")
    scores = [judge.score(example, "Paris", {}) for _ in range(7)]
    assert [(s.value, s.unscorable) for s in scores] == [
        (0.0, True), (1.0, False), (0.0, False), (1.0, False), (0.0, True), (0.0, True),
        (0.0, True)]
    assert parse_verdict("does not pass ... FAIL") is None
    results = [ExampleResult(id=str(i), inputs={}, expected="", scores={"llm_judge": s},
                             primary="llm_judge") for i, s in enumerate(scores)]
    metrics = summary_metrics(results)
    assert metrics[EvalMetric.UNSCORABLE] == 4 and metrics[EvalMetric.CORRECT] == 2
    assert [r.row()["unscorable"] for r in results[:2]] == ["llm_judge", ""]


# ---- dataset input errors ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "line"), [
    ("nested.jsonl", b'{"inputs": {"q": 1}, "expected": 1}\n{"inputs": {"q": '
     + b"[" * 100_000 + b"]" * 100_000 + b'}, "expected": 2}\n', 2),
    ("latin1.jsonl", '{"inputs": {"q": "ok"}, "expected": 1}\n{"inputs": {"q": "caf\u00e9"}, '
     '"expected": 2}\n'.encode("latin-1"), 2),
    ("big.csv", b"question,expected\nshort,1\nlong," + b"x" * 140_000 + b"\n", 3),
])
def test_eval_dataset_errors_are_one_line_naming_file_and_line(
    tmp_path: Path, workdir: Path, name: str, content: bytes, line: int
) -> None:
    data = tmp_path / name
    data.write_bytes(content)
    result = CliRunner().invoke(cli, ["eval", str(EXAMPLES / "qa_assistant.yaml"),
                                      "--dataset", str(data), "--demo"])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"{data} line {line}:" in result.stderr
    assert "Traceback" not in result.output
    assert [p.name for p in workdir.iterdir()] == [name]  # no store, no mlruns


def test_eval_of_a_workflow_uses_its_whole_observability_block(
    mlflow_store: str, experiment_name: str, tmp_path: Path
) -> None:
    """`eval` builds its handler as `run` does: redaction set in the pipeline block covers
    the example runs, the judge's runs and what evaluation writes; the JSONL sink of the
    workflow gets one line per example (the old handler read the mlflow block only)."""
    from configurable_agents.evaluation.workflow_eval import evaluate_workflow

    lines = tmp_path / "eval.jsonl"
    text = (EXAMPLES / "qa_assistant.yaml").read_text(encoding="utf-8")
    text = text.replace("      experiment_name: qa_assistant", (
        "      experiment_name: qa_assistant\n"
        "    pipeline:\n      redact_pii: true\n"
        f"    jsonl:\n      enabled: true\n      path: {lines}"))
    workflow = tmp_path / "qa.yaml"
    workflow.write_text(text, encoding="utf-8")
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"e{n}", "inputs": {"question": q}, "expected": e})
                            + "\n" for n, (q, e) in enumerate(
                                [(f"Mail {EMAIL} my key {API_KEY}", "Paris"),
                                 (f"Is {CARD} valid?", EMAIL)])), encoding="utf-8")
    judge = _judge(json.dumps({"verdict": "PASS", "rationale": f"mentions {EMAIL}"}),
                   json.dumps({"verdict": "FAIL", "rationale": "no"}))
    result = evaluate_workflow(workflow, data, [judge, Contains()], demo=True,
                               tracking_uri=mlflow_store, experiment=experiment_name)
    written = lines.read_text(encoding="utf-8").splitlines()
    assert len(written) == 2  # one line of facts per example
    _no_secret("\n".join(written))
    client = MlflowClient(mlflow_store)
    exp = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([exp.experiment_id], max_results=200)
    kinds = {r.data.tags.get(Tag.KIND) for r in runs}
    assert Kind.EVALUATION in kinds and len(runs) > 4  # evaluation, examples, nodes, judge
    judge_runs = [r for r in runs if r.data.tags.get(Tag.WORKFLOW_NAME, "").endswith("_judge")]
    assert judge_runs, "the judge's own runs are written beside the evaluation"
    for run in runs:
        _no_secret(json.dumps([run.data.params, run.data.tags, run.info.run_name]))
        for artifact in client.list_artifacts(run.info.run_id):
            if not artifact.is_dir:
                path = client.download_artifacts(run.info.run_id, artifact.path, str(tmp_path))
                _no_secret(Path(path).read_text(encoding="utf-8", errors="replace"))
    table = client.download_artifacts(result.run_id, Artifact.EVAL_RESULTS, str(tmp_path))
    assert "<EMAIL>" in Path(table).read_text(encoding="utf-8")  # redacted, not dropped
