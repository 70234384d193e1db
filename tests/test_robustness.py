"""Bad inputs log cleanly, never crash the exporter, and secrets never leave the process."""

import dataclasses
import datetime as dt
import decimal
import itertools
import json
import logging
import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import numpy as np
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel, SecretStr

from configurable_agents.config import MLFlowConfig
from configurable_agents.observability import MLflowCallbackHandler
from tests.fakes import UsageChatModel, repeating, reply
from tests.test_enterprise import everything_written
from tests.test_handler_shapes import artifact_text, make_handler, runs_of


class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    label: str
    size: float


class AnyState(TypedDict, total=False):
    payload: Any
    text: str


def echo_graph() -> Any:
    graph = StateGraph(AnyState)
    graph.add_node("echo", lambda state: {"text": "done"})
    graph.add_edge(START, "echo")
    graph.add_edge("echo", END)
    return graph.compile()


def test_exotic_state_values_are_logged_faithfully(mlflow_store, experiment_name, mlflow_client):
    cyclic: dict[str, Any] = {"name": "loop"}
    cyclic["self"] = cyclic
    payload = {
        "bytes": b"\x00\x01binary",
        "when": dt.datetime(2026, 11, 26, 12, 30, tzinfo=dt.UTC),
        "amount": decimal.Decimal("12.50"),
        "tags": {"b", "a"},
        "point": Point(x=1, y=2),
        "box": Box("crate", 2.5),
        "matrix": np.arange(6).reshape(2, 3),
        "cyclic": cyclic,
        "text": "naïve café 🚀 and a NUL \x00 byte",
    }
    handler = make_handler(mlflow_store, experiment_name)
    echo_graph().invoke({"payload": payload}, config={"callbacks": [handler]})
    assert handler.flush(60)
    assert handler.stats().internal_errors == 0
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    logged = json.loads(artifact_text(mlflow_client, parent, "inputs.json"))["payload"]
    assert logged["bytes"] == "<bytes: 8 bytes>"
    assert logged["when"] == "2026-11-26T12:30:00+00:00"
    assert logged["amount"] == "12.50"
    assert logged["tags"] == ["a", "b"]
    assert logged["point"] == {"x": 1, "y": 2}
    assert logged["box"] == {"label": "crate", "size": 2.5}
    assert logged["matrix"] == [[0, 1, 2], [3, 4, 5]]
    assert logged["cyclic"]["self"] == "<cycle: dict>"
    assert logged["text"].startswith("naïve café 🚀")
    assert parent.info.status == "FINISHED"


def test_huge_prompt_is_capped_with_marker_and_original_size(
    mlflow_store, experiment_name, mlflow_client
):
    huge = "word " * 10_000_000  # 50 MB
    handler = make_handler(mlflow_store, experiment_name, max_artifact_bytes=1_000_000)
    model = UsageChatModel(messages=iter([reply("short answer", 12_500_000, 3)]))
    model.invoke(huge, config={"callbacks": [handler]})
    assert handler.flush(120)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    prompt = artifact_text(mlflow_client, parent, "prompt.txt")
    assert len(prompt) == 1_000_000
    assert "[truncated by configurable-agents:" in prompt
    assert int(parent.data.tags["truncated.prompt.txt"]) >= 50_000_000
    assert parent.data.metrics["total_input_tokens"] == 12_500_000


def test_metadata_keys_mlflow_rejects_are_sanitized(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(
        mlflow_store, experiment_name, tag_metadata_keys=["team#1", "préférence", "a|b"]
    )
    echo_graph().invoke(
        {"payload": 1},
        config={
            "callbacks": [handler],
            "metadata": {"team#1": "x", "préférence": "y", "a|b": "z", "user_id": "u"},
        },
    )
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    assert parent.data.tags["team_1"] == "x"
    assert parent.data.tags["a_b"] == "z"
    assert parent.data.tags["user_id"] == "u"
    assert handler.stats().internal_errors == 0


def test_thousand_node_graph_splits_batches(mlflow_store, experiment_name, mlflow_client):
    class CountState(TypedDict, total=False):
        visits: Annotated[list[int], operator.add]

    graph = StateGraph(CountState)
    names = [f"n{i:04d}" for i in range(1000)]
    for i, name in enumerate(names):
        graph.add_node(name, lambda state, i=i: {"visits": [i]})
    graph.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        graph.add_edge(a, b)
    graph.add_edge(names[-1], END)
    handler = make_handler(
        mlflow_store, experiment_name, log_artifacts=False, params={f"p{i}": i for i in range(250)}
    )
    out = graph.compile().invoke({}, config={"callbacks": [handler], "recursion_limit": 2000})
    assert len(out["visits"]) == 1000
    assert handler.flush(600)
    (parent,), nodes = runs_of(mlflow_client, experiment_name)
    assert len(nodes) == 1000
    assert parent.data.metrics["node_count"] == 1000
    assert len([k for k in parent.data.params if k.startswith("p")]) == 250  # > 100 per batch


def test_secrets_never_reach_params_tags_artifacts_or_logs(
    mlflow_store, experiment_name, mlflow_client, caplog, tmp_path
):
    secret = "sk-live-" + "Z" * 32
    password = "hunter2-pw-xyz"

    class KeyedModel(UsageChatModel):
        api_key: SecretStr = SecretStr(secret)

        @property
        def _identifying_params(self) -> dict[str, Any]:
            return {**super()._identifying_params, "api_key": self.api_key}

    model = KeyedModel(messages=iter([reply("ok", 5, 1)]))
    handler = make_handler(mlflow_store, experiment_name, params={"openai_api_key": secret})
    with caplog.at_level(logging.DEBUG):
        model.invoke(
            "hi",
            config={
                "callbacks": [handler],
                "metadata": {
                    "api_key": secret,
                    "ca_params": {"auth_token": secret},
                    "ca_tags": {"db_password": password},
                },
            },
        )
        assert handler.flush(60)
    written = everything_written(mlflow_client, experiment_name)
    assert secret not in written
    assert password not in written
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    assert parent.data.params["openai_api_key"] == "***"
    assert parent.data.params["auth_token"] == "***"
    assert parent.data.tags["db_password"] == "***"

    # Credentials in the tracking URI: never in a log line, never on disk in the spool.
    dead = MLflowCallbackHandler(
        MLFlowConfig(
            enabled=True,
            tracking_uri=f"http://alice:{password}@127.0.0.1:9/",
            experiment_name="x",
            spool_dir=str(tmp_path / "spool"),
        )
    )
    with caplog.at_level(logging.DEBUG):
        repeating("ok", 3, 1).invoke("hi", config={"callbacks": [dead]})
        dead.close(timeout=15)
        assert password not in repr(dead)
    assert password not in caplog.text
    for path in Path(tmp_path / "spool").rglob("*"):
        if path.is_file():
            assert password not in path.read_text()
