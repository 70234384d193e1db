"""Sampling with exact totals: kept workflows are full runs, the rest fold into rollup runs.

Real LangGraph graphs, real sqlite MLflow store, langchain-core fake chat models with
usage. The same traffic goes to one experiment with ``sample_rate: 1`` (the ground
truth) and one sampled; ``report costs`` and ``report compare`` must give the same totals.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from configurable_agents.cli import app as cli_app
from configurable_agents.config import MLFlowConfig
from configurable_agents.names import Kind, Metric, Tag
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.sampling import Sampler, head_sample
from configurable_agents.observability.sinks.mlflow.rollups import write_rollup
from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter
from configurable_agents.reports.reporting import compare_runs, cost_report
from tests.fakes import repeating
from tests.test_handler_shapes import article_writer, runs_of

WORKFLOWS = 40


def handler_for(store: str, experiment: str, **config: Any) -> MLflowCallbackHandler:
    return MLflowCallbackHandler(
        MLFlowConfig(enabled=True, tracking_uri=store, experiment_name=experiment, **config),
        workflow_name="article_writer", workflow_version="1.0.0",
    )


class Boom(RuntimeError):
    pass


def failing_writer(model: Any) -> Any:
    """The article writer's shape whose ``write`` node raises."""
    from langgraph.graph import END, START, StateGraph

    from tests.test_handler_shapes import ArticleState

    def research(_state: dict[str, Any]) -> dict[str, str]:
        return {"research": model.invoke("r").content}

    def write(_state: dict[str, Any]) -> dict[str, str]:
        raise Boom("the write node failed")

    graph = StateGraph(ArticleState)
    graph.add_node("research", research)
    graph.add_node("write", write)
    graph.add_edge(START, "research")
    graph.add_edge("research", "write")
    graph.add_edge("write", END)
    return graph.compile()


def run_traffic(handlers: list[MLflowCallbackHandler], run_ids: list[uuid.UUID]) -> int:
    """One stream of invocations seen by every handler at once (so durations agree too):
    varied usage, one failure. Returns failures."""
    failures = 0
    for n, run_id in enumerate(run_ids):
        app = article_writer(repeating(f"a{n}", 100 + 7 * n, 20 + n))
        if n == 5:
            app = failing_writer(repeating("x", 10, 1))
        try:
            out = app.invoke({"topic": f"t{n}"}, config={"callbacks": handlers, "run_id": run_id})
            assert out["article"] == f"a{n}"
        except Boom:
            failures += 1
    assert all(handler.flush(120) for handler in handlers)
    return failures


@pytest.fixture(scope="module")
def sampled_pair(tmp_path_factory: pytest.TempPathFactory, mlflow_store: str) -> dict[str, Any]:
    """Two experiments fed by the same invocations: full (truth) and sample_rate 0.25."""
    run_ids = [uuid.UUID(int=(i + 1) * 7919) for i in range(WORKFLOWS)]
    suffix = uuid.uuid4().hex[:6]
    full, sampled = f"truth-{suffix}", f"sampled-{suffix}"
    spool = tmp_path_factory.mktemp("spool")
    truth = handler_for(mlflow_store, full, spool_dir=str(spool / "a"))
    handler = handler_for(mlflow_store, sampled, sample_rate=0.25, spool_dir=str(spool / "b"))
    assert run_traffic([truth, handler], run_ids) == 1
    stats = handler.stats()
    truth.close()
    handler.close()
    return {"full": full, "sampled": sampled, "run_ids": run_ids, "stats": stats}


def test_only_kept_workflows_are_runs_the_rest_are_rollups(sampled_pair, mlflow_store):
    client = MlflowClient(mlflow_store)
    parents, nodes = runs_of(client, sampled_pair["sampled"])
    kept = {str(r) for n, r in enumerate(sampled_pair["run_ids"])
            if n == 5 or head_sample(str(r)) < 0.25}
    assert {p.data.tags[Tag.LANGCHAIN_RUN_ID] for p in parents} == kept
    assert 1 < len(kept) < WORKFLOWS  # the hash really samples
    assert len(nodes) == 2 * len(kept)
    failed = [p for p in parents if p.info.status == "FAILED"]
    assert len(failed) == 1  # the tail rule kept the failure
    exp = client.get_experiment_by_name(sampled_pair["sampled"])
    rollups = client.search_runs([exp.experiment_id],
                                 filter_string=f"tags.`{Tag.KIND}` = '{Kind.ROLLUP}'")
    assert rollups, "sampled-out workflows must be folded into rollup runs"
    folded = sum(r.data.metrics[Metric.ROLLUP_WORKFLOWS] for r in rollups)
    assert folded == WORKFLOWS - len(kept)
    rollup = rollups[0]
    assert rollup.info.run_name.startswith("rollup_article_writer_")
    assert rollup.data.params["workflow_version"] == "1.0.0"
    assert {"node/research/cost_usd", "node/write/input_tokens",
            "model/gemini-2.5-flash/cost_usd"} <= set(rollup.data.metrics)
    # The MLflow run list hides rollups with one filter.
    ordinary = client.search_runs([exp.experiment_id],
                                  filter_string=f"tags.`{Tag.KIND}` != '{Kind.ROLLUP}'")
    assert len(ordinary) == len(parents) + len(nodes)


@pytest.mark.parametrize("direct_db", [True, False])
def test_report_costs_totals_are_exact_under_sampling(sampled_pair, mlflow_store, direct_db):
    truth = cost_report(("workflow",), tracking_uri=mlflow_store,
                        experiments=[sampled_pair["full"]], direct_db=direct_db).totals
    sampled = cost_report(("workflow",), tracking_uri=mlflow_store,
                          experiments=[sampled_pair["sampled"]], direct_db=direct_db).totals
    assert truth.runs == sampled.runs == WORKFLOWS
    assert (truth.succeeded, truth.failed) == (sampled.succeeded, sampled.failed) == (39, 1)
    assert truth.input_tokens == sampled.input_tokens > 0
    assert truth.output_tokens == sampled.output_tokens > 0
    assert truth.cost_usd > 0
    assert math.isclose(truth.cost_usd, sampled.cost_usd, rel_tol=0, abs_tol=1e-9)
    # The same invocations timed by both handlers (each adds the other's callback time).
    assert math.isclose(truth.duration_mean_s, sampled.duration_mean_s, rel_tol=0.2)


def test_report_by_node_and_model_is_exact_under_sampling(sampled_pair, mlflow_store):
    for key in ("node", "model"):
        truth = cost_report((key,), tracking_uri=mlflow_store, experiments=[sampled_pair["full"]])
        sampled = cost_report((key,), tracking_uri=mlflow_store,
                              experiments=[sampled_pair["sampled"]])
        by_key = {g.key: g for g in sampled.groups}
        for group in truth.groups:
            other = by_key[group.key]
            assert (group.runs, group.input_tokens, group.output_tokens) == (
                other.runs, other.input_tokens, other.output_tokens), (key, group.key)
            assert math.isclose(group.cost_usd, other.cost_usd, abs_tol=1e-9)


def test_report_compare_counts_rollups_once(sampled_pair, mlflow_store):
    spec = "params.workflow_version = '1.0.0'"
    truth = compare_runs(spec, spec, tracking_uri=mlflow_store,
                         experiments=[sampled_pair["full"]])
    sampled = compare_runs(spec, spec, tracking_uri=mlflow_store,
                           experiments=[sampled_pair["sampled"]])
    assert truth.baseline is not None and sampled.baseline is not None
    assert sampled.baseline.runs == truth.baseline.runs == WORKFLOWS
    assert math.isclose(sampled.baseline.cost_usd, truth.baseline.cost_usd, abs_tol=1e-9)
    assert sampled.baseline.input_tokens == truth.baseline.input_tokens
    nodes = {n.node: n for n in sampled.nodes}
    for node in truth.nodes:
        assert node.baseline is not None
        assert nodes[node.node].baseline.runs == node.baseline.runs  # type: ignore[union-attr]


def test_cli_report_costs_json_matches_ground_truth(sampled_pair, mlflow_store):
    import json

    totals = []
    for name in (sampled_pair["full"], sampled_pair["sampled"]):
        result = CliRunner().invoke(cli_app, ["report", "costs", "--tracking-uri", mlflow_store,
                                              "--experiment", name, "--format", "json"])
        assert result.exit_code == 0, result.output
        totals.append(json.loads(result.output)["totals"])
    assert totals[0]["runs"] == totals[1]["runs"] == WORKFLOWS
    assert abs(totals[0]["cost_usd"] - totals[1]["cost_usd"]) <= 1e-9


def test_a_rollup_written_twice_counts_once(mlflow_store, experiment_name, tmp_path):
    """A retried or replayed rollup write leaves two runs with one rollup id: read once."""
    handler = handler_for(mlflow_store, experiment_name, sample_rate=0.0,
                          spool_dir=str(tmp_path / "spool"))
    run_traffic_ok(handler, 6)
    writer = MlflowWriter(mlflow_store)
    experiment_id = writer.experiment_id(experiment_name)
    client = MlflowClient(mlflow_store)
    (rollup,) = client.search_runs([experiment_id],
                                   filter_string=f"tags.`{Tag.KIND}` = '{Kind.ROLLUP}'")
    before = cost_report(tracking_uri=mlflow_store, experiments=[experiment_name]).totals
    from configurable_agents.observability.sinks.run_plan import RunPlan

    data = rollup.data
    replayed = RunPlan(run_name=rollup.info.run_name, start_ms=rollup.info.start_time,
                       end_ms=rollup.info.end_time, status="FINISHED", params=dict(data.params),
                       metrics=dict(data.metrics), tags={k: v for k, v in data.tags.items()
                                                         if not k.startswith("mlflow.")})
    write_rollup(writer, experiment_id, replayed)  # a duplicate, as a replay would leave
    assert len(client.search_runs([experiment_id],
                                  filter_string=f"tags.`{Tag.KIND}` = '{Kind.ROLLUP}'")) == 2
    after = cost_report(tracking_uri=mlflow_store, experiments=[experiment_name]).totals
    assert after.runs == before.runs == 6
    assert after.cost_usd == before.cost_usd > 0
    handler.close()


def run_traffic_ok(handler: MLflowCallbackHandler, count: int) -> None:
    for n in range(count):
        app = article_writer(repeating("ok", 50 + n, 10))
        assert app.invoke({"topic": str(n)}, config={"callbacks": [handler]})["article"] == "ok"
    assert handler.flush(60)


def test_tail_rules_keep_retried_and_costly_workflows(mlflow_store, experiment_name, tmp_path):
    """sample_rate 0 writes nothing in full except what the tail rules keep."""
    handler = handler_for(mlflow_store, experiment_name, sample_rate=0.0,
                          sample_keep_cost_usd=0.0005, spool_dir=str(tmp_path / "spool"))
    cheap = article_writer(repeating("ok", 10, 1))
    costly = article_writer(repeating("ok", 100_000, 50_000))
    assert cheap.invoke({"topic": "c"}, config={"callbacks": [handler]})["article"] == "ok"
    assert costly.invoke({"topic": "$"}, config={"callbacks": [handler]})["article"] == "ok"
    assert handler.flush(60)
    parents, _ = runs_of(MlflowClient(mlflow_store), experiment_name)
    assert len(parents) == 1
    assert parents[0].data.metrics[Metric.TOTAL_COST_USD] >= 0.0005
    handler.close()


def test_sampler_is_deterministic_and_off_by_default():
    assert not Sampler().samples
    ids = [str(uuid.UUID(int=i)) for i in range(2000)]
    kept = [i for i in ids if head_sample(i) < 0.1]
    assert kept == [i for i in ids if head_sample(i) < 0.1]
    assert 120 < len(kept) < 280  # about 10%
    with pytest.raises(ValueError, match="sample_rate"):
        MLFlowConfig(sample_rate=1.5)


@pytest.mark.parametrize(("uri", "workers"), [
    ("sqlite:///x.db", 1), ("file:///tmp/mlruns", 1), ("http://mlflow:5000", 4),
    ("https://mlflow.example.com", 4), ("postgresql://u@h/db", 4),
])
def test_export_workers_default_by_uri(uri: str, workers: int):
    assert MLFlowConfig(tracking_uri=uri).resolved_export_workers == workers
    assert MLFlowConfig(tracking_uri=uri, export_workers=8).resolved_export_workers == 8
    with pytest.raises(ValueError, match="export_workers"):
        MLFlowConfig(tracking_uri=uri, export_workers=0)
