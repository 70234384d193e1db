"""The sink pipeline end to end: JSONL alone, JSONL beside MLflow, and sink isolation.

Real LangGraph graphs and a real sqlite MLflow store; the only sink written for the
test is a deliberately stuck or failing one, to show that it holds back no other.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from mlflow.tracking import MlflowClient

from configurable_agents.config.loader import load_global_config
from configurable_agents.config.schema import (
    GlobalConfig,
    JsonlConfig,
    MLFlowConfig,
    ObservabilityConfig,
)
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.facts.model import WorkflowFacts
from configurable_agents.observability.sinks.base import Sink
from tests.fakes import repeating
from tests.test_handler_shapes import article_writer, runs_of


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_sink_alone_writes_one_line_of_facts_per_workflow(tmp_path: Path) -> None:
    path = tmp_path / "out" / "facts.jsonl"
    handler = MLflowCallbackHandler(
        ObservabilityConfig(jsonl=JsonlConfig(enabled=True, path=str(path))),
        workflow_name="article_writer", workflow_version="1.0.0",
    )
    assert handler.enabled and [s.name for s in handler.sinks] == ["jsonl"]
    app = article_writer(repeating("text", 120, 40))
    results = [app.invoke({"topic": t}, config={"callbacks": [handler]}) for t in "abc"]
    assert handler.flush(timeout=30)

    lines = _lines(path)
    assert len(lines) == 3 and all(r["article"] for r in results)
    first = lines[0]
    assert first["workflow_name"] == "article_writer" and first["workflow_version"] == "1.0.0"
    assert first["status"] == "FINISHED"
    totals = first["totals"]
    assert totals["input_tokens"] == 240 and totals["output_tokens"] == 80
    assert totals["node_count"] == 2
    assert [n["node_id"] for n in first["nodes"]] == ["research", "write"]
    research = first["nodes"][0]
    call = research["calls"][0]
    assert call["input_tokens"] == 120 and call["output_tokens"] == 40
    assert first["calls"] == []  # every call was made inside a node
    assert "prompt" not in call and "inputs" not in first  # prompts stay out unless asked
    stats = handler.stats()
    assert stats.sinks["jsonl"].exported == 3 and stats.exported == 0  # no MLflow sink
    handler.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_jsonl_and_mlflow_see_the_same_numbers(tmp_path, mlflow_store, experiment_name):
    path = tmp_path / "facts.jsonl"
    config = load_global_config({
        "observability": {
            "mlflow": {"enabled": True, "tracking_uri": mlflow_store,
                       "experiment_name": experiment_name},
            "jsonl": {"enabled": True, "path": str(path), "include_artifacts": True},
        }
    }, env=False)
    assert isinstance(config, GlobalConfig)
    handler = MLflowCallbackHandler(config, workflow_name="article_writer")
    article_writer(repeating("words", 300, 90)).invoke(
        {"topic": "tides"}, config={"callbacks": [handler], "metadata": {"team": "ocean"}}
    )
    assert handler.flush(timeout=60)
    parents, _nodes = runs_of(MlflowClient(mlflow_store), experiment_name)
    [line] = _lines(path)
    assert len(parents) == 1
    parent = parents[0]
    assert line["langchain_run_id"] == parent.data.tags["langchain_run_id"]
    for name, metric in (("input_tokens", "total_input_tokens"),
                         ("output_tokens", "total_output_tokens"),
                         ("cost_usd", "total_cost_usd"), ("node_count", "node_count")):
        assert line["totals"][name] == parent.data.metrics[metric], name
    assert line["attribution"]["team"] == "ocean" == parent.data.tags["team"]
    assert line["nodes"][0]["calls"][0]["prompt"]
    handler.close()


class _StuckSink(Sink):
    """A destination that hangs until released, then fails: a dead collector, say."""

    name = "stuck"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def export(self, facts: WorkflowFacts) -> None:
        self.release.wait(30)
        raise ConnectionError("collector unreachable")


def test_a_stuck_sink_holds_back_no_other_and_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "facts.jsonl"
    stuck = _StuckSink()
    handler = MLflowCallbackHandler(
        ObservabilityConfig(
            mlflow=MLFlowConfig(enabled=False, flush_timeout_s=1),
            jsonl=JsonlConfig(enabled=True, path=str(path)),
        ),
        sinks=[stuck],
    )
    app = article_writer(repeating("x", 10, 5))
    result = app.invoke({"topic": "a"}, config={"callbacks": [handler]})
    assert result["article"]  # the app's answer is untouched

    assert not handler.flush(timeout=1.0)  # the stuck sink has not finished ...
    assert len(_lines(path)) == 1  # ... yet the JSONL sink already wrote its line
    assert handler.stats().sinks["stuck"].queue_depth == 1
    stuck.release.set()
    assert handler.flush(timeout=10)
    stats = handler.stats()
    assert stats.sinks["stuck"].failed == 1 and stats.sinks["jsonl"].exported == 1
    assert stats.internal_errors == 1
    handler.close()


def test_no_sink_enabled_means_no_work() -> None:
    handler = MLflowCallbackHandler(ObservabilityConfig())
    assert not handler.enabled and handler.sinks == []
    assert handler.ignore_chain and handler.ignore_llm
    assert handler.flush(timeout=1)
