"""Cost reports and run comparison over a real sqlite MLflow store.

Runs are seeded through ``MlflowClient`` in exactly the handler's layout (/tmp/layout.md):
workflow run + nested node runs tagged ``mlflow.parentRunId``, explicit start/end times.
One database per module, one experiment per test.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from configurable_agents.reports.reporting import (
    ReportError,
    compare_runs,
    cost_report,
    parse_run_ids,
    parse_time_bound,
    percentile,
    plot_cost_per_day,
)

KIND = "configurable_agents.kind"
# Fixed, recent-enough times: 2026-11-01 10:00 UTC and the following days.
T0 = int(datetime(2026, 11, 1, 10, 0, tzinfo=UTC).timestamp() * 1000)
DAY = 86_400_000


@dataclass
class NodeSpec:
    node_id: str
    model: str = "gemini-2.5-flash"
    input_tokens: int = 100
    output_tokens: int = 50
    cost: float = 0.001
    duration_ms: float = 1000.0
    retries: int = 0
    ok: bool = True
    children: list[NodeSpec] = field(default_factory=list)  # subgraph nodes


def seed_workflow(
    client: MlflowClient,
    experiment_id: str,
    *,
    workflow: str = "article_writer",
    version: str = "1.0.0",
    start_ms: int = T0,
    duration_s: float = 2.0,
    status: str = "FINISHED",
    nodes: Sequence[NodeSpec] = (),
    tags: dict[str, str] | None = None,
    unpriced_models: Sequence[str] = (),
    cost: float | None = None,
    retries: int | None = None,
) -> str:
    """One workflow run with its node runs, in the handler's layout. Returns the run id."""
    attribution = dict(tags or {})
    all_nodes: list[NodeSpec] = []

    def walk(specs: Sequence[NodeSpec]) -> None:
        for spec in specs:
            all_nodes.append(spec)
            walk(spec.children)

    walk(nodes)
    parent_tags = {
        KIND: "workflow",
        "langchain_run_id": str(uuid.uuid4()),
        "workflow_name": workflow,
        "workflow_version": version,
        "status": status,
        **attribution,
    }
    if unpriced_models:
        parent_tags["pricing"] = "unknown"
        parent_tags["unpriced_models"] = ",".join(unpriced_models)
    if status == "FAILED":
        parent_tags["error_type"] = "ValueError"
        parent_tags["error_message"] = "boom"
    end_ms = start_ms + int(duration_s * 1000)
    parent = client.create_run(experiment_id, start_time=start_ms, tags=parent_tags,
                               run_name=workflow)
    parent_id = parent.info.run_id

    def log_nodes(specs: Sequence[NodeSpec], parent_run: str, offset: int) -> None:
        for spec in specs:
            node_start = start_ms + offset
            node = client.create_run(
                experiment_id, start_time=node_start, run_name=f"node_{spec.node_id}",
                tags={KIND: "node", "mlflow.parentRunId": parent_run,
                      "workflow_name": workflow, "workflow_version": version,
                      "langchain_run_id": str(uuid.uuid4()), **attribution},
            )
            values = {"node_duration_ms": spec.duration_ms, "input_tokens": spec.input_tokens,
                      "output_tokens": spec.output_tokens, "retries": spec.retries,
                      "cost_usd": spec.cost, "llm_calls": 1, "cached_input_tokens": 0,
                      "reasoning_tokens": 0, "status": int(spec.ok)}
            node_end = node_start + int(spec.duration_ms)
            client.log_batch(
                node.info.run_id,
                metrics=[Metric(k, float(v), node_end, 0) for k, v in values.items()],
                params=[Param("node_id", spec.node_id), Param("node_model", spec.model),
                        Param("tools", "[]")],
            )
            log_nodes(spec.children, node.info.run_id, offset + 1)
            client.set_terminated(node.info.run_id, "FINISHED" if spec.ok else "FAILED",
                                  end_time=node_end)

    log_nodes(nodes, parent_id, 10)
    totals = {
        "duration_seconds": duration_s,
        "total_input_tokens": sum(n.input_tokens for n in all_nodes),
        "total_output_tokens": sum(n.output_tokens for n in all_nodes),
        "total_cost_usd": sum(n.cost for n in all_nodes) if cost is None else cost,
        "node_count": len(all_nodes),
        "retry_count": sum(n.retries for n in all_nodes) if retries is None else retries,
        "status": 1 if status == "FINISHED" else 0,
        "llm_calls": len(all_nodes),
        "total_cached_input_tokens": 0,
        "total_reasoning_tokens": 0,
    }
    client.log_batch(
        parent_id,
        metrics=[Metric(k, float(v), end_ms, 0) for k, v in totals.items()],
        params=[Param("workflow_name", workflow), Param("workflow_version", version),
                Param("global_model", "gemini-2.5-flash"), Param("global_temperature", "0.7")],
        tags=[RunTag("mlflow.runName", workflow)],
    )
    client.set_terminated(parent_id, "FINISHED" if status != "FAILED" else "FAILED",
                          end_time=end_ms)
    return parent_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, MlflowClient]:
    path = tmp_path_factory.mktemp("reporting") / "mlflow.db"
    uri = f"sqlite:///{path}"
    return uri, MlflowClient(tracking_uri=uri)


@pytest.fixture
def experiment(store: tuple[str, MlflowClient]) -> Iterator[tuple[str, MlflowClient, str, str]]:
    """(uri, client, experiment name, experiment id): a fresh experiment per test."""
    uri, client = store
    name = f"exp_{uuid.uuid4().hex[:10]}"
    yield uri, client, name, client.create_experiment(name)


def three_node(cost: float = 0.001, **kw: float) -> list[NodeSpec]:
    return [NodeSpec("research", cost=cost, **kw), NodeSpec("write", model="gpt-4o-mini",
            cost=2 * cost, **kw), NodeSpec("review", cost=3 * cost, **kw)]


@pytest.fixture(scope="module")
def mixed(store: tuple[str, MlflowClient]) -> tuple[str, str, list[str]]:
    """4 article_writer runs (one failed, one unpriced) and 1 support_bot run (read-only)."""
    uri, client = store
    name = f"mixed_{uuid.uuid4().hex[:10]}"
    eid = client.create_experiment(name)
    ids = [
        seed_workflow(client, eid, start_ms=T0, duration_s=1.0, nodes=three_node(0.01),
                      tags={"team": "data", "user_id": "alice", "tenant_id": "acme"}),
        seed_workflow(client, eid, start_ms=T0 + 60_000, duration_s=2.0,
                      nodes=three_node(0.02, retries=1), tags={"team": "data", "user_id": "bob"}),
        seed_workflow(client, eid, start_ms=T0 + DAY, duration_s=3.0, status="FAILED",
                      nodes=[*three_node(0.01)[:2], NodeSpec("review", ok=False, cost=0.0)],
                      tags={"team": "ml", "user_id": "alice"}),
        seed_workflow(client, eid, start_ms=T0 + DAY + 1000, duration_s=4.0,
                      nodes=[NodeSpec("research", model="mystery-1", cost=0.0),
                             NodeSpec("write", model="gpt-4o-mini", cost=0.02)],
                      unpriced_models=["mystery-1"], tags={"team": "ml", "user_id": "carol"}),
        seed_workflow(client, eid, workflow="support_bot", version="2.0.0",
                      start_ms=T0 + 2 * DAY, duration_s=10.0,
                      nodes=[NodeSpec("answer", model="claude-sonnet-4", cost=0.5,
                                      input_tokens=1000, output_tokens=500)],
                      tags={"team": "data", "user_id": "alice"}),
    ]
    return uri, name, ids


def by_key(report_groups: Sequence, *key: str):
    return next(g for g in report_groups if g.key == key)


# --------------------------------------------------------------------------- cost report


def test_group_by_workflow_exact_measures(mixed: tuple[str, str, list[str]]) -> None:
    uri, name, _ = mixed
    report = cost_report(["workflow"], tracking_uri=uri, experiments=[name])
    assert report.level == "workflow"
    assert [g.key for g in report.groups] == [("support_bot",), ("article_writer",)]
    aw = by_key(report.groups, "article_writer")
    assert (aw.runs, aw.completed, aw.succeeded) == (4, 4, 3)
    assert aw.success_rate == pytest.approx(0.75)
    # 3 + 3 + 3 + 2 nodes of 100 in / 50 out
    assert (aw.input_tokens, aw.output_tokens) == (1100, 550)
    assert aw.cost_usd == pytest.approx(0.06 + 0.12 + 0.03 + 0.02)
    assert aw.cost_per_run == pytest.approx(0.23 / 4)
    assert aw.duration_mean_s == pytest.approx(2.5)
    assert aw.duration_p95_s == pytest.approx(3.85)  # linear: 3 + 0.85 * (4 - 3)
    assert aw.retries == 3
    assert aw.unpriced_runs == 1
    sb = by_key(report.groups, "support_bot")
    assert (sb.runs, sb.cost_usd, sb.duration_p95_s, sb.success_rate) == (1, 0.5, 10.0, 1.0)
    assert report.totals.runs == 5
    assert report.totals.cost_usd == pytest.approx(0.73)
    assert report.totals.unpriced_runs == 1


def test_group_by_several_keys_and_top(mixed: tuple[str, str, list[str]]) -> None:
    uri, name, _ = mixed
    report = cost_report(["team,status"], tracking_uri=uri, experiments=[name], top=2)
    assert report.group_by == ("team", "status")
    assert report.total_groups == 3
    assert [g.key for g in report.groups] == [("data", "FINISHED"), ("ml", "FAILED")]
    assert report.groups[0].runs == 3
    assert report.groups[0].cost_usd == pytest.approx(0.68)
    assert report.totals.runs == 5  # totals cover every group, not only the top ones


def test_group_by_node_and_model_reads_nested_runs(mixed: tuple[str, str, list[str]]) -> None:
    uri, name, _ = mixed
    report = cost_report(["node"], tracking_uri=uri, experiments=[name])
    assert report.level == "node"
    assert [g.key[0] for g in report.groups] == ["answer", "write", "review", "research"]
    write = by_key(report.groups, "write")
    assert write.runs == 4
    assert write.cost_usd == pytest.approx(0.02 + 0.04 + 0.02 + 0.02)
    assert write.retries == 1
    assert write.duration_mean_s == pytest.approx(1.0)
    review = by_key(report.groups, "review")
    assert (review.runs, review.succeeded, review.success_rate) == (3, 2, pytest.approx(2 / 3))
    research = by_key(report.groups, "research")
    assert research.unpriced_runs == 1  # the mystery-1 node of the unpriced workflow
    assert report.totals.runs == 12
    assert report.totals.cost_usd == pytest.approx(0.73)

    models = cost_report(["model", "workflow"], tracking_uri=uri, experiments=[name])
    assert by_key(models.groups, "gpt-4o-mini", "article_writer").runs == 4
    assert by_key(models.groups, "mystery-1", "article_writer").unpriced_runs == 1
    assert by_key(models.groups, "gemini-2.5-flash", "article_writer").unpriced_runs == 0
    assert by_key(models.groups, "claude-sonnet-4", "support_bot").cost_usd == 0.5


def test_subgraph_nodes_join_their_workflow(experiment: tuple) -> None:
    uri, client, name, eid = experiment
    inner = [NodeSpec("inner_a", cost=0.1), NodeSpec("inner_b", cost=0.2)]
    # The handler writes a subgraph node's metrics inclusive of its children's.
    seed_workflow(client, eid, nodes=[NodeSpec("sub", cost=0.3, input_tokens=200,
                                               children=inner)],
                  tags={"team": "data"})
    report = cost_report(["node", "team"], tracking_uri=uri, experiments=[name])
    assert {g.key: g.cost_usd for g in report.groups} == {
        ("inner_b", "data"): 0.2, ("inner_a", "data"): 0.1, ("sub", "data"): 0.0}
    assert report.totals.cost_usd == pytest.approx(0.3)  # each call counted once
    assert report.totals.input_tokens == 200


def test_filter_and_time_window(mixed: tuple[str, str, list[str]]) -> None:
    uri, name, _ = mixed
    data = cost_report(["user"], tracking_uri=uri, experiments=[name],
                       filter_string="tags.team = 'data'")
    assert {g.key[0]: g.runs for g in data.groups} == {"alice": 2, "bob": 1}
    day2 = cost_report(["day"], tracking_uri=uri, experiments=[name],
                       since="2026-11-02", until="2026-11-02")
    assert [(g.key, g.runs) for g in day2.groups] == [(("2026-11-02",), 2)]
    nodes = cost_report(["node"], tracking_uri=uri, experiments=[name], since="2026-11-02",
                        until="2026-11-02", filter_string="params.workflow_version = '1.0.0'")
    assert nodes.totals.runs == 5  # 3 nodes of the failed run + 2 of the unpriced one
    version = cost_report(["workflow_version"], tracking_uri=uri, experiments=[name],
                          filter_string="params.workflow_version = '2.0.0'")
    assert [(g.key, g.runs) for g in version.groups] == [(("2.0.0",), 1)]


def test_empty_report(experiment: tuple) -> None:
    uri, _, name, _ = experiment
    report = cost_report(["node"], tracking_uri=uri, experiments=[name])
    assert report.empty and report.groups == () and report.totals.success_rate is None


def test_dataframe_and_dict(mixed: tuple[str, str, list[str]]) -> None:
    uri, name, _ = mixed
    report = cost_report(["workflow", "day"], tracking_uri=uri, experiments=[name])
    frame = report.to_dataframe()
    assert list(frame.columns[:3]) == ["workflow", "day", "runs"]
    assert frame["runs"].sum() == 5
    assert frame["cost_usd"].sum() == pytest.approx(0.73)
    as_dict = report.to_dict()
    assert as_dict["totals"]["runs"] == 5 and as_dict["scope"]["experiments"] == [name]
    assert report.cost_per_day() == {
        "2026-11-01": {"article_writer": pytest.approx(0.18)},
        "2026-11-02": {"article_writer": pytest.approx(0.05)},
        "2026-11-03": {"support_bot": pytest.approx(0.5)},
    }


def test_plot_cost_per_day_writes_png(mixed: tuple[str, str, list[str]], tmp_path: Path) -> None:
    uri, name, _ = mixed
    report = cost_report(["team"], tracking_uri=uri, experiments=[name])
    out = plot_cost_per_day(report, tmp_path / "costs.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


# --------------------------------------------------------------------------- compare


def test_compare_filters_exact_deltas(experiment: tuple) -> None:
    uri, client, name, eid = experiment
    for i in range(2):
        seed_workflow(client, eid, version="1.0.0", start_ms=T0 + i, duration_s=2.0,
                      nodes=[NodeSpec("plan", cost=0.01, duration_ms=500),
                             NodeSpec("write", cost=0.03, duration_ms=1500)])
    new = [seed_workflow(client, eid, version="1.1.0", start_ms=T0 + 100 + i, duration_s=1.0,
                         nodes=[NodeSpec("plan", cost=0.005, duration_ms=250, retries=1),
                                NodeSpec("write", cost=0.015, duration_ms=750)])
           for i in range(4)]
    result = compare_runs("params.workflow_version = '1.0.0'", ",".join(new),
                          tracking_uri=uri, experiments=[name])
    deltas = {d.measure: d for d in result.deltas}
    assert (deltas["runs"].baseline, deltas["runs"].candidate) == (2, 4)
    assert deltas["runs"].absolute == 2 and deltas["runs"].relative == pytest.approx(1.0)
    assert deltas["cost_usd"].baseline == pytest.approx(0.08)
    assert deltas["cost_usd"].candidate == pytest.approx(0.08)
    assert deltas["cost_per_run"].relative == pytest.approx(-0.5)
    assert deltas["duration_mean_s"].absolute == pytest.approx(-1.0)
    assert deltas["retries"].baseline == 0 and deltas["retries"].relative is None
    assert deltas["retries"].absolute == 4
    plan = next(n for n in result.nodes if n.node == "plan")
    plan_d = {d.measure: d for d in plan.deltas}
    assert (plan_d["runs"].baseline, plan_d["runs"].candidate) == (2, 4)
    assert plan_d["duration_mean_s"].baseline == pytest.approx(0.5)
    assert plan_d["duration_mean_s"].relative == pytest.approx(-0.5)
    assert [n.node for n in result.nodes] == ["plan", "write"]
    assert result.empty_sides == [] and result.notes == ()
    frame = result.to_dataframe()
    assert set(frame["scope"]) == {"overall", "node:plan", "node:write"}


def test_compare_empty_side_and_missing_ids(experiment: tuple) -> None:
    uri, client, name, eid = experiment
    seed_workflow(client, eid, nodes=[NodeSpec("plan")])
    ghost = uuid.uuid4().hex
    result = compare_runs("params.workflow_version = '9.9.9'", ghost,
                          tracking_uri=uri, experiments=[name])
    assert result.baseline is None and result.candidate is None
    assert result.empty_sides == ["baseline", "candidate"]
    assert result.notes == (f"candidate: 1 of 1 run ids are not workflow runs in the selected "
                            f"experiments: {ghost}",)
    assert all(d.absolute is None for d in result.deltas)


# --------------------------------------------------------------------------- errors


def test_errors_are_report_errors(store: tuple[str, MlflowClient], tmp_path: Path) -> None:
    uri, client = store
    name = f"exp_{uuid.uuid4().hex[:10]}"
    client.create_experiment(name)
    with pytest.raises(ReportError, match=r"invalid filter 'tags.team = ': Invalid clause"):
        cost_report(tracking_uri=uri, experiments=[name], filter_string="tags.team = ")
    with pytest.raises(ReportError, match=r"unknown experiment 'nope'.*known: .*exp_"):
        cost_report(tracking_uri=uri, experiments=["nope"])
    with pytest.raises(ReportError, match="no MLflow database at"):
        cost_report(tracking_uri=f"sqlite:///{tmp_path}/missing.db")
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(ReportError, match="unknown group-by key 'colour'"):
        cost_report(["colour"], tracking_uri=uri, experiments=[name])
    with pytest.raises(ReportError, match="cannot read time 'yesterday-ish'"):
        cost_report(tracking_uri=uri, experiments=[name], since="yesterday-ish")
    with pytest.raises(ReportError, match="is not before"):
        cost_report(tracking_uri=uri, experiments=[name], since="2026-11-02", until="2026-11-01")


# --------------------------------------------------------------------------- parsing


def test_parse_time_bound() -> None:
    now = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)
    assert parse_time_bound("7d", now=now) == now - timedelta(days=7)
    assert parse_time_bound("12h", now=now) == now - timedelta(hours=12)
    assert parse_time_bound("2w", now=now) == now - timedelta(weeks=2)
    assert parse_time_bound("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_time_bound("2026-11-01", end=True) == datetime(2026, 11, 2, tzinfo=UTC)
    assert parse_time_bound("2026-11-01T08:15") == datetime(2026, 11, 1, 8, 15, tzinfo=UTC)
    assert parse_time_bound("today", now=now) == datetime(2026, 11, 26, tzinfo=UTC)


def test_parse_run_ids_and_percentile() -> None:
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    assert parse_run_ids(f"{a}, {b},") == [a, b]
    assert parse_run_ids("params.workflow_version = '1.0.0'") is None
    assert percentile([], 95) is None
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    assert math.isclose(percentile([7.0], 95) or 0, 7.0)


def test_reports_over_runs_written_by_the_real_handler(mlflow_store, experiment_name) -> None:
    """Seeded through MLflowCallbackHandler and real LangGraph graphs, not hand-made runs."""
    from configurable_agents.reports.reporting import compare_runs
    from tests.fakes import repeating
    from tests.test_handler_shapes import article_writer, make_handler

    for version, tokens in (("1.0.0", 1000), ("2.0.0", 400)):
        handler = make_handler(mlflow_store, experiment_name, workflow_name="article_writer",
                               workflow_version=version)
        app = article_writer(repeating("text", tokens, 100))
        for user in ("ann", "bob"):
            app.invoke({"topic": "x"}, config={"callbacks": [handler],
                                               "metadata": {"user_id": user}})
        assert handler.flush(120)
        handler.close()
    report = cost_report(["workflow_version"], tracking_uri=mlflow_store,
                         experiments=[experiment_name])
    by_version = {g.key[0]: g for g in report.groups}
    # gemini-2.5-flash: 2 nodes x (tokens x $0.30 + 100 x $2.50) per 1M tokens, 2 runs each.
    assert by_version["1.0.0"].cost_usd == pytest.approx(2 * 2 * (1000 * 0.3 + 100 * 2.5) / 1e6)
    assert by_version["2.0.0"].cost_usd == pytest.approx(2 * 2 * (400 * 0.3 + 100 * 2.5) / 1e6)
    assert by_version["1.0.0"].input_tokens == 4000
    assert by_version["1.0.0"].success_rate == 1.0
    nodes = cost_report(["node", "user"], tracking_uri=mlflow_store,
                        experiments=[experiment_name])
    assert {g.key for g in nodes.groups} == {
        (n, u) for n in ("research", "write") for u in ("ann", "bob")}
    assert nodes.totals.cost_usd == pytest.approx(report.totals.cost_usd)
    comparison = compare_runs("params.workflow_version = '1.0.0'",
                              "params.workflow_version = '2.0.0'",
                              tracking_uri=mlflow_store, experiments=[experiment_name])
    assert not comparison.empty_sides
    assert {n.node for n in comparison.nodes} == {"research", "write"}
