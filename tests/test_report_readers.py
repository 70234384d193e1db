"""The two report readers agree: straight from the database and through ``search_runs``.

``report_db.DatabaseReader`` reads MLflow's tables through MLflow's own filter translation;
``SearchRunsReader`` pages through ``MlflowClient.search_runs``. Every report and comparison
here is computed twice over the same store, once each way, and must come out identical, on
sqlite and on PostgreSQL. Runs come from the real handler (successes, a failure, retries,
attribution) plus hand-seeded shapes the handler makes rarely (subgraphs, unpriced models,
NaN metrics, deleted runs).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from mlflow import MlflowClient
from mlflow.entities import Metric

from configurable_agents.reports.reporting import (
    ReportError,
    compare_runs,
    cost_report,
)
from configurable_agents.reports.store import open_client, open_reader
from tests.fakes import repeating
from tests.servers import PostgresCluster
from tests.test_handler_shapes import article_writer, make_handler
from tests.test_reporting import DAY, T0, NodeSpec, seed_workflow, three_node

GROUPINGS = (
    ("workflow",), ("workflow_version",), ("node",), ("model",), ("user",), ("team",),
    ("tenant",), ("day",), ("status",), ("workflow", "node"), ("model", "team"),
    ("tag:session_id",), ("param:global_model",),
)
FILTERS = (
    None,
    "tags.team = 'data'",
    "tags.team LIKE 'd%'",
    "params.workflow_version = '1.0.0'",
    "attributes.status = 'FAILED'",
    "metrics.total_cost_usd > 0.001",
    "attributes.run_name = 'support_bot'",
    "tags.tenant_id IS NULL",
)


class Topic(TypedDict, total=False):
    topic: str
    out: str


def failing_app(model: Any) -> Any:
    """One node that calls the model, then fails: the handler logs a FAILED workflow."""

    def draft(state: Topic) -> Topic:
        model.invoke(f"Draft {state['topic']}")
        raise ValueError("draft rejected")

    graph = StateGraph(Topic)
    graph.add_node("draft", draft)
    graph.add_edge(START, "draft")
    graph.add_edge("draft", END)
    return graph.compile()


def seed_varied(uri: str, experiment: str) -> list[str]:
    """Handler-written and hand-seeded runs in ``experiment``; returns the kept seeded ids."""
    for version, tokens in (("1.0.0", 1000), ("2.0.0", 400)):
        handler = make_handler(uri, experiment, workflow_name="article_writer",
                               workflow_version=version)
        app = article_writer(repeating("text", tokens, 100))
        for user, team in (("ann", "data"), ("bob", "ml")):
            app.invoke({"topic": "x"}, config={"callbacks": [handler], "metadata": {
                "user_id": user, "team": team, "session_id": f"s-{user}"}})
        with pytest.raises(ValueError, match="draft rejected"):
            failing_app(repeating("t", 50, 5)).invoke(
                {"topic": "y"}, config={"callbacks": [handler], "metadata": {"team": "data"}})
        assert handler.flush(120)
        handler.close()
    client = MlflowClient(uri)
    eid = client.get_experiment_by_name(experiment).experiment_id
    kept = [
        seed_workflow(client, eid, workflow="support_bot", version="2.0.0", start_ms=T0,
                      nodes=[NodeSpec("answer", model="claude-sonnet-4", cost=0.5,
                                      children=[NodeSpec("lookup", cost=0.1)])],
                      tags={"team": "data", "tenant_id": "acme"}),
        seed_workflow(client, eid, start_ms=T0 + DAY, status="FAILED",
                      nodes=[NodeSpec("research", model="mystery-1", cost=0.0),
                             NodeSpec("write", ok=False)],
                      unpriced_models=["mystery-1"], tags={"team": "ml"}),
    ]
    nan_run = seed_workflow(client, eid, start_ms=T0 + 2 * DAY, nodes=three_node(0.002))
    client.log_batch(nan_run, metrics=[Metric("duration_seconds", float("nan"), T0, 1)])
    kept.append(nan_run)
    deleted = seed_workflow(client, eid, start_ms=T0 + 3 * DAY, nodes=three_node(9.0))
    client.delete_run(deleted)
    return kept


def assert_readers_agree(uri: str, experiment: str) -> int:
    """Every grouping x filter, and two comparisons, both ways. Returns the reports checked."""
    checked = 0
    for filter_string in FILTERS:
        for group_by in GROUPINGS:
            fast, slow = (cost_report(group_by, tracking_uri=uri, experiments=[experiment],
                                      filter_string=filter_string, direct_db=direct)
                          for direct in (True, False))
            assert (fast.scope.read_via, slow.scope.read_via) == ("database", "search_runs")
            where = f"{group_by} {filter_string!r}"
            assert fast.groups == slow.groups, where
            assert fast.totals == slow.totals, where
            assert [r.run_id for r in fast.rows] == [r.run_id for r in slow.rows], where
            assert fast.rows == slow.rows, where
            checked += 1
    for baseline, candidate in (
        ("params.workflow_version = '1.0.0'", "params.workflow_version = '2.0.0'"),
        ("tags.team = 'data'", "tags.team = 'nobody'"),
    ):
        fast_c, slow_c = (compare_runs(baseline, candidate, tracking_uri=uri,
                                       experiments=[experiment], direct_db=direct)
                          for direct in (True, False))
        assert fast_c.to_dict() | {"scope": None} == slow_c.to_dict() | {"scope": None}
        assert fast_c.scope.read_via == "database"
        checked += 1
    return checked


def test_readers_agree_on_sqlite(mlflow_store: str, experiment_name: str) -> None:
    kept = seed_varied(mlflow_store, experiment_name)
    report = cost_report(["workflow"], tracking_uri=mlflow_store, experiments=[experiment_name])
    # 6 handler workflows (2 of them failed) + 3 kept seeds; the deleted run is in neither.
    assert report.totals.runs == 9
    assert set(kept) <= {r.run_id for r in report.rows}
    assert report.totals.cost_usd < 9.0
    assert report.totals.unpriced_runs == 1
    assert assert_readers_agree(mlflow_store, experiment_name) == len(FILTERS) * len(
        GROUPINGS) + 2


def test_database_reader_reports_progress_per_chunk(mlflow_store: str, experiment_name: str
                                                    ) -> None:
    client = MlflowClient(mlflow_store)
    eid = client.create_experiment(experiment_name)
    for n in range(7):
        seed_workflow(client, eid, start_ms=T0 + n * 60_000, nodes=three_node())
    seen: list[tuple[str, int]] = []
    report = cost_report(["node"], tracking_uri=mlflow_store, experiments=[experiment_name],
                         page_size=3, progress=lambda phase, n: seen.append((phase, n)))
    assert report.scope.read_via == "database"
    assert seen == [("workflow", 3), ("workflow", 6), ("workflow", 7),
                    *[("node", n) for n in range(3, 22, 3)]]
    assert report.totals.runs == 21


def test_bad_filter_is_the_same_error_both_ways(mlflow_store: str, experiment_name: str
                                                ) -> None:
    MlflowClient(mlflow_store).create_experiment(experiment_name)
    messages = []
    for direct in (True, False):
        expected = r"invalid filter 'tags.team = ': Invalid clause"
        with pytest.raises(ReportError, match=expected) as info:
            cost_report(["workflow"], tracking_uri=mlflow_store, experiments=[experiment_name],
                        filter_string="tags.team = ", direct_db=direct)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_stores_without_a_database_use_search_runs(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A file store (and any non-SQLAlchemy store, e.g. a tracking server) reads via search_runs."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    client = MlflowClient(uri)
    eid = client.create_experiment("files")
    seed_workflow(client, eid, nodes=three_node(0.01))
    assert open_reader(*open_client(uri)).name == "search_runs"
    report = cost_report(["node"], tracking_uri=uri, experiments=["files"])
    assert report.scope.read_via == "search_runs"
    assert report.totals.cost_usd == pytest.approx(0.06)


@pytest.fixture(scope="module")
def postgres_uri(postgres_cluster: PostgresCluster | None) -> Iterator[str]:
    if postgres_cluster is None:
        pytest.skip("PostgreSQL is not installed here (CI installs it and never skips)")
    yield postgres_cluster.create_database(f"reports_{uuid.uuid4().hex[:8]}")


def test_readers_agree_on_postgres(postgres_uri: str, experiment_name: str) -> None:
    seed_varied(postgres_uri, experiment_name)
    report = cost_report(["workflow"], tracking_uri=postgres_uri,
                         experiments=[experiment_name])
    assert report.scope.read_via == "database"
    assert report.totals.runs == 9
    assert assert_readers_agree(postgres_uri, experiment_name) > 0


def test_old_sqlite_gets_chunks_within_its_variable_limit(
    mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.32 allows 999 bound variables per statement; the reader stays under."""
    import sqlite3

    from configurable_agents.reports.db import DatabaseReader

    client, uri = open_client(mlflow_store)
    assert DatabaseReader.for_client(client, uri)._chunk_size == 5000
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    assert DatabaseReader.for_client(client, uri)._chunk_size == 900
