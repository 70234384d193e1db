"""Names are data (issue #15, items 1, 3, 10, 12): cleaned to what MLflow accepts, never paths.

Real LangGraph graphs, the real handler and a real sqlite MLflow store.
"""

from __future__ import annotations

import operator
import os
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import dispatch_custom_event
from langgraph.graph import END, START, StateGraph
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from configurable_agents.cli import app as cli_app
from configurable_agents.names import Kind, Tag
from configurable_agents.observability.sinks.spool import Spool
from tests.test_handler_shapes import make_handler, runs_of


class State(TypedDict, total=False):
    text: str
    log: Annotated[list[str], operator.add]


def graph(node_fn: Any = None) -> Any:
    def work(state: State) -> dict[str, Any]:
        if node_fn is not None:
            node_fn(state)
        return {"text": "done", "log": ["work"]}

    builder = StateGraph(State)
    builder.add_node("work", work)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    return builder.compile()


# ---- item 1: artifact names are data --------------------------------------------------------


def test_artifact_names_from_metadata_never_escape_the_run(
    mlflow_store, experiment_name, mlflow_client
):
    marker = f"ca-escape-{uuid.uuid4().hex[:8]}"
    absolute = f"/tmp/{marker}/x.txt"
    climbing = f"../../../../../{marker}.txt"
    handler = make_handler(mlflow_store, experiment_name)
    graph().invoke({"text": "hi"}, config={"callbacks": [handler], "metadata": {
        "ca_node_artifacts": {absolute: "abs", climbing: "up", "..": "nothing", "ok.txt": "ok"},
    }})
    assert handler.flush(60)
    assert not Path(absolute).exists()
    assert not Path(f"/{marker}.txt").exists()
    assert not list(Path("/tmp").glob(f"{marker}*"))
    _, (node,) = runs_of(mlflow_client, experiment_name)
    local = Path(mlflow_client.download_artifacts(node.info.run_id, ""))
    files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    assert f"tmp/{marker}/x.txt" in files
    assert f"{marker}.txt" in files
    assert "ok.txt" in files
    assert (local / f"{marker}.txt").read_text() == "up"


# ---- item 3: one poison workflow never blocks the rest --------------------------------------


def poison(state: State) -> None:
    dispatch_custom_event("ca_node_metrics", {"bad#metric": 1, "ok": 2})


def test_poison_names_are_cleaned_and_every_healthy_workflow_lands(
    mlflow_store, experiment_name, mlflow_client
):
    handler = make_handler(mlflow_store, experiment_name)
    graph(poison).invoke({"text": "p"}, config={"callbacks": [handler], "metadata": {
        "ca_tags": {"mlflow.user": "forged", "ok_tag": "x"},
        "ca_params": {"a/../b": 1, "c#d": 2},
    }})
    app = graph()
    for i in range(30):
        app.invoke({"text": f"q{i}"}, config={"callbacks": [handler]})
    assert handler.flush(120)
    stats = handler.stats()
    handler.close()
    parents, nodes = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 31 and len(nodes) == 31
    assert stats.spooled == 0 and stats.rejected == 0 and stats.internal_errors == 0
    (bad,) = [p for p in parents if "ok_tag" in p.data.tags]
    assert bad.data.params["a/_/b"] == "1" and bad.data.params["c_d"] == "2"
    assert bad.data.tags.get("mlflow.user") != "forged"
    (bad_node,) = [n for n in nodes if n.data.tags[Tag.MLFLOW_PARENT_RUN_ID] == bad.info.run_id]
    assert bad_node.data.metrics["bad_metric"] == 1 and bad_node.data.metrics["ok"] == 2


def test_a_workflow_mlflow_refuses_is_set_aside_and_the_rest_flows(
    mlflow_store, experiment_name, mlflow_client, tmp_path
):
    """The early run of a long workflow is deleted while it runs: MLflow then refuses every
    write to it (INVALID_STATE, a 4xx). That is not "MLflow is down"."""
    spool_dir = tmp_path / "spool"
    handler = make_handler(mlflow_store, experiment_name, spool_dir=str(spool_dir))
    client = MlflowClient(mlflow_store)

    def delete_my_early_run(state: State) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            exp = client.get_experiment_by_name(experiment_name)
            runs = client.search_runs([exp.experiment_id]) if exp else []
            if runs:
                client.delete_run(runs[0].info.run_id)
                return
            time.sleep(0.2)
        raise AssertionError("the early run never appeared")

    graph(delete_my_early_run).invoke({"text": "poison"}, config={"callbacks": [handler]})
    app = graph()
    for i in range(30):
        app.invoke({"text": f"q{i}"}, config={"callbacks": [handler]})
    assert handler.flush(120)
    stats = handler.stats()
    handler.close()
    parents, _ = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 30  # every healthy workflow after the refused one
    assert stats.rejected == 1 and stats.spooled == 0 and stats.backend_up
    spool = Spool(spool_dir)
    (aside,) = spool.rejected()
    reason = Path(f"{aside}.reason.txt").read_text()
    assert "MLflow refused it" in reason
    assert spool.pending() == []
    result = CliRunner().invoke(
        cli_app, ["sync", "--tracking-uri", mlflow_store, "--spool-dir", str(spool_dir)]
    )
    assert result.exit_code == 0 and "Nothing to sync" in result.output


# ---- item 12: ca_tags cannot overwrite what the handler sets --------------------------------


def test_ca_tags_cannot_overwrite_attribution_or_identifying_tags(
    mlflow_store, experiment_name, mlflow_client
):
    handler = make_handler(mlflow_store, experiment_name, tags={"cost_center": "cc-1"})
    graph().invoke({"text": "x"}, config={"callbacks": [handler], "metadata": {
        "tenant_id": "acme", "user_id": "u1",
        "ca_tags": {
            "tenant_id": "other", "user_id": "evil", "cost_center": "cc-9",
            Tag.KIND: Kind.NODE, Tag.LANGCHAIN_RUN_ID: "x", Tag.STATUS: "FAILED",
            "mlflow.runName": "forged", "mlflow.parentRunId": "0" * 32,
            "configurable_agents.host": "forged", "free_form": "kept",
        },
    }})
    assert handler.flush(60)
    (parent,), (node,) = runs_of(mlflow_client, experiment_name)
    for run in (parent, node):
        tags = run.data.tags
        assert tags["tenant_id"] == "acme" and tags["user_id"] == "u1"
        assert tags["cost_center"] == "cc-1"
        assert tags[Tag.LANGCHAIN_RUN_ID] != "x" and tags[Tag.STATUS] == "FINISHED"
        assert tags["free_form"] == "kept"
        assert tags.get("configurable_agents.host") != "forged"
    assert parent.data.tags[Tag.KIND] == Kind.WORKFLOW
    assert parent.info.run_name != "forged"
    assert node.data.tags[Tag.MLFLOW_PARENT_RUN_ID] == parent.info.run_id
    assert Tag.MLFLOW_PARENT_RUN_ID not in parent.data.tags


# ---- item 10: a bad input loses at most its own field ---------------------------------------


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


def test_bad_inputs_lose_at_most_the_offending_field(mlflow_store, experiment_name,
                                                      mlflow_client):
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(5000):
        cursor["a"] = {}
        cursor = cursor["a"]
    handler = make_handler(mlflow_store, experiment_name)
    app = graph()
    cases = [
        {"metadata": {"user_id": Unprintable(), "ca_tags": {"t": Unprintable()},
                      "ca_node_artifacts": {"a.txt": Unprintable(), "b.txt": "kept"}}},
        {"metadata": {"ca_params": {"deep": deep, "flat": 1}}},
        {"run_id": "not-a-uuid"},
        {"metadata": {"user_id": "lone \ud800 surrogate", "ca_tags": {"k\udc00": "v\ud800"}}},
    ]
    for extra in cases:
        extra_md = extra.get("metadata", {})
        config = {**extra, "callbacks": [handler], "metadata": {**extra_md, "case": "x"}}
        assert app.invoke({"text": "x"}, config=config)["text"] == "done"

    def failing(state: State) -> None:
        raise UnprintableError()

    try:
        graph(failing).invoke({"text": "x"}, config={"callbacks": [handler]})
    except UnprintableError:
        pass
    else:
        raise AssertionError("the app's own exception must reach the caller")
    assert handler.flush(60)
    stats = handler.stats()
    handler.close()
    parents, _ = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 5
    assert stats.internal_errors == 0 and stats.spooled == 0 and stats.failed == 0
    by_param = {p.data.params.get("flat"): p for p in parents}
    assert "nested too deep" in by_param["1"].data.params["deep"]
    assert any(p.data.tags.get("user_id") == "<unprintable Unprintable>" for p in parents)
    assert any("surrogate" in p.data.tags.get("user_id", "") for p in parents)
    failed = [p for p in parents if p.info.status == "FAILED"]
    assert len(failed) == 1 and failed[0].data.tags[Tag.ERROR_TYPE] == "UnprintableError"
    assert not list(Path(os.environ["XDG_CACHE_HOME"]).rglob("*.tmp"))
