"""Catch-up: after an outage the spool drains by itself, on several workers, while new
traffic keeps flowing; every workflow lands exactly once.

A real ``mlflow server`` on PostgreSQL (sqlite locally without PostgreSQL), stopped and
restarted on the same port. No ``flush()`` until the spool is empty: the drain is the
sink's own idle work.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from mlflow.tracking import MlflowClient

from tests.servers import MlflowServer, PostgresCluster
from tests.test_reliability import assert_exactly_once, server_handler, timed_invokes


@pytest.fixture(scope="module")
def team_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_cluster: PostgresCluster | None
) -> Iterator[MlflowServer]:
    root = tmp_path_factory.mktemp("catchup-server")
    if postgres_cluster is not None:
        backend = postgres_cluster.create_database(f"mlflow_{uuid.uuid4().hex[:8]}")
    else:
        backend = f"sqlite:///{root / 'server.db'}"
    server = MlflowServer(backend, root / "artifacts", workers=2)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_spool_drains_by_itself_while_new_traffic_flows(team_server, tmp_path):
    experiment = f"catchup-{uuid.uuid4().hex[:6]}"
    handler = server_handler(team_server.url, experiment, tmp_path, export_workers=4)
    sink = handler._pipeline.sink("mlflow")
    assert sink is not None
    try:
        timed_invokes(handler, 2)
        assert handler.flush(120)
        team_server.stop()
        timed_invokes(handler, 12, offset=2)
        deadline = time.monotonic() + 60
        while sink.counters.get("spooled") < 12 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sink.counters.get("spooled") == 12  # all of the outage's workflows
        team_server.start()
        offset = 14
        deadline = time.monotonic() + 120
        # Replay batches count when they end, so wait on the counters, not the directory.
        while (sink.counters.get("replayed") < sink.counters.get("spooled") or len(sink.spool)
               ) and time.monotonic() < deadline:
            timed_invokes(handler, 1, offset=offset)  # new traffic keeps coming
            offset += 1
            time.sleep(0.3)
        assert len(sink.spool) == 0, "the spool did not drain by itself"
        # New traffic that came while the breaker still waited for its probe went to the
        # spool too: everything spooled was replayed.
        assert sink.counters.get("replayed") == sink.counters.get("spooled") >= 12
        assert handler.flush(120)
        assert_exactly_once(MlflowClient(team_server.url), experiment, range(offset))
    finally:
        handler.close()
