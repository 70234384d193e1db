"""Redaction on everything that leaves the process, attribution tags, tenant isolation."""

import threading
import uuid
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from mlflow.tracking import MlflowClient

from tests.fakes import UsageChatModel, reply
from tests.test_handler_shapes import make_handler, runs_of

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"


class State(TypedDict, total=False):
    question: str
    answer: str


def leaky_app():
    """A node whose prompt, response, state and error message all carry PII and secrets."""
    model = UsageChatModel(
        messages=iter([reply(f"Sure {EMAIL}, card {CARD} noted", 40, 12)]), model_name="gpt-4o"
    )

    def answer(state: State) -> State:
        return {"answer": model.invoke(f"{state['question']} my key is {KEY}").content}

    graph = StateGraph(State)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    return graph.compile()


def everything_written(client: MlflowClient, experiment: str) -> str:
    """Every param, tag, metric name and artifact text of an experiment, concatenated."""
    parents, nodes = runs_of(client, experiment)
    parts = []
    for run in parents + nodes:
        parts += [f"{k}={v}" for k, v in run.data.params.items()]
        parts += [f"{k}={v}" for k, v in run.data.tags.items()]
        parts.append(run.info.run_name or "")
        for art in client.list_artifacts(run.info.run_id):
            with open(client.download_artifacts(run.info.run_id, art.path), encoding="utf-8") as fh:
                parts.append(fh.read())
    return "\n".join(parts)


def test_redact_pii_scrubs_params_tags_and_artifacts(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(mlflow_store, experiment_name, redact_pii=True, params={"owner": EMAIL})
    out = leaky_app().invoke(
        {"question": f"Email me at {EMAIL}"},
        config={"callbacks": [handler], "metadata": {"user_id": EMAIL, "team": "support"}},
    )
    # The app's own result is untouched.
    assert EMAIL in out["answer"]
    assert handler.flush(60)
    written = everything_written(mlflow_client, experiment_name)
    assert EMAIL not in written
    assert CARD not in written
    assert KEY not in written
    assert "<EMAIL>" in written
    assert "<CREDIT_CARD>" in written
    assert "<OPENAI_KEY>" in written
    (parent,), (node,) = runs_of(mlflow_client, experiment_name)
    assert parent.data.tags["user_id"] == "<EMAIL>"
    assert parent.data.params["owner"] == "<EMAIL>"
    assert node.data.tags["team"] == "support"


def test_redaction_reaches_error_messages_and_tracebacks(
    mlflow_store, experiment_name, mlflow_client
):
    def fail(state: State) -> State:
        raise ValueError(f"customer {EMAIL} rejected")

    graph = StateGraph(State)
    graph.add_node("fail", fail)
    graph.add_edge(START, "fail")
    graph.add_edge("fail", END)
    handler = make_handler(mlflow_store, experiment_name, redact_pii=True)
    try:
        graph.compile().invoke({"question": "x"}, config={"callbacks": [handler]})
    except ValueError as exc:
        assert EMAIL in str(exc)  # the caller sees the real exception
    assert handler.flush(60)
    written = everything_written(mlflow_client, experiment_name)
    assert EMAIL not in written
    assert "customer <EMAIL> rejected" in written


def test_custom_redaction_callable_and_config(mlflow_store, experiment_name, mlflow_client):
    from configurable_agents.config import MLFlowConfig
    from configurable_agents.observability import MLflowCallbackHandler
    from configurable_agents.observability.privacy.redaction import Redactor

    redactor = Redactor(
        {"extra_patterns": {"ticket": r"TCK-\d{4}"}, "allow_list": ["help@example.com"]},
        custom=lambda text: text.replace("Project Falcon", "<PROJECT>"),
    )
    handler = MLflowCallbackHandler(
        MLFlowConfig(
            enabled=True,
            tracking_uri=mlflow_store,
            experiment_name=experiment_name,
            redact_pii=True,
        ),
        redactor=redactor,
    )
    model = UsageChatModel(messages=iter([reply("ok", 5, 1)]))
    model.invoke(
        "TCK-1234 for Project Falcon, write help@example.com", config={"callbacks": [handler]}
    )
    assert handler.flush(60)
    written = everything_written(mlflow_client, experiment_name)
    assert "TCK-1234" not in written and "<TICKET>" in written
    assert "Project Falcon" not in written and "<PROJECT>" in written
    assert "help@example.com" in written


def test_attribution_tags_static_tags_and_listed_keys(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(
        mlflow_store,
        experiment_name,
        tags={"env": "prod"},
        tag_metadata_keys=["project", "bad key!"],
    )
    leaky_app().invoke(
        {"question": "q"},
        config={
            "callbacks": [handler],
            "metadata": {
                "user_id": "u1",
                "team": "data",
                "cost_center": "R&D",
                "tenant_id": "acme",
                "session_id": "s1",
                "project": "apollo",
                "bad key!": "x",
                "unlisted": "nope",
            },
        },
    )
    assert handler.flush(60)
    (parent,), (node,) = runs_of(mlflow_client, experiment_name)
    expected = {
        "user_id": "u1",
        "team": "data",
        "cost_center": "R&D",
        "tenant_id": "acme",
        "session_id": "s1",
        "project": "apollo",
        "env": "prod",
        "bad key_": "x",
    }
    for run in (parent, node):
        for key, value in expected.items():
            assert run.data.tags[key] == value, key
        assert "unlisted" not in run.data.tags
    found = mlflow_client.search_runs(
        [parent.info.experiment_id],
        filter_string="tags.user_id = 'u1' and tags.`configurable_agents.kind` = 'node'",
    )
    assert [r.info.run_id for r in found] == [node.info.run_id]


def test_three_tenants_concurrently_stay_isolated(mlflow_store, mlflow_client):
    prefix = f"t{uuid.uuid4().hex[:6]}"
    handler = make_handler(mlflow_store, prefix + "_{tenant_id}_workflows")
    tenants = ["acme", "globex", "initech"]
    errors: list[BaseException] = []

    def run(tenant: str, i: int) -> None:
        try:
            model = UsageChatModel(messages=iter([reply("ok", 10 + i, 1)]))
            model.invoke(
                "hi",
                config={
                    "callbacks": [handler],
                    "metadata": {"tenant_id": tenant, "user_id": f"{tenant}-{i}"},
                },
            )
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t, i)) for t in tenants for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert handler.flush(120)
    for tenant in tenants:
        parents, _ = runs_of(mlflow_client, f"{prefix}_{tenant}_workflows")
        assert len(parents) == 6
        assert {p.data.tags["tenant_id"] for p in parents} == {tenant}
        assert {p.data.tags["user_id"] for p in parents} == {f"{tenant}-{i}" for i in range(6)}


def test_missing_or_invalid_tenant_goes_to_quarantine(mlflow_store, mlflow_client):
    prefix = f"q{uuid.uuid4().hex[:6]}"
    quarantine = f"{prefix}_quarantine"
    handler = make_handler(mlflow_store, prefix + "_{tenant_id}", quarantine_experiment=quarantine)
    for metadata in ({}, {"tenant_id": "../acme"}, {"tenant_id": "acme' or '1'='1"}):
        UsageChatModel(messages=iter([reply("ok", 3, 1)])).invoke(
            "hi", config={"callbacks": [handler], "metadata": metadata}
        )
    assert handler.flush(60)
    parents, _ = runs_of(mlflow_client, quarantine)
    assert len(parents) == 3
    assert mlflow_client.get_experiment_by_name(f"{prefix}_acme") is None


def test_fail_closed_tenant_is_not_logged(mlflow_store, mlflow_client):
    prefix = f"f{uuid.uuid4().hex[:6]}"
    handler = make_handler(
        mlflow_store,
        prefix + "_{tenant_id}",
        tenant_fail_closed=True,
        quarantine_experiment=f"{prefix}_q",
    )
    UsageChatModel(messages=iter([reply("ok", 3, 1)])).invoke(
        "hi", config={"callbacks": [handler], "metadata": {}}
    )
    assert handler.flush(60)
    assert handler.stats().dropped == 1
    assert mlflow_client.get_experiment_by_name(f"{prefix}_q") is None


def test_redaction_block_in_config_is_applied(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(mlflow_store, experiment_name, redact_pii=True, redaction={
        "extra_patterns": {"employee_id": "EMP-[0-9]{6}"}, "disabled_detectors": ["email"]})
    UsageChatModel(messages=iter([reply("ok", 5, 1)])).invoke(
        f"EMP-123456 writes from {EMAIL}", config={"callbacks": [handler]})
    assert handler.flush(60)
    written = everything_written(mlflow_client, experiment_name)
    assert "EMP-123456" not in written and "<EMPLOYEE_ID>" in written
    assert EMAIL in written  # the email detector was switched off
