"""Past one machine: several ``mlflow server`` instances over one PostgreSQL and one S3.

The servers keep no state of their own (runs and traces in the database, artifacts in
the bucket), so a team adds instances and spreads its writers over them (one URI per app
replica, or any HTTP load balancer in front). Here two instances share a database and a
moto S3 bucket; workflows are written round-robin through both, and each instance then
reads back every workflow exactly once: runs, their linked traces (usage, cost, spans
from the batched ``/v1/traces`` requests) and the artifacts in the bucket.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import requests
from mlflow.tracking import MlflowClient

from tests.servers import MlflowServer, PostgresCluster, S3Server
from tests.test_handler_shapes import runs_of
from tests.test_reliability import assert_exactly_once, server_handler, timed_invokes
from tests.test_request_counts import _assert_traces_match_runs

IN_CI = os.environ.get("CI", "").lower() == "true"
BUCKET = "scale-out"


@pytest.fixture(autouse=True)
def _patient_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two servers and PostgreSQL on a busy CI host: this test checks the shape (every
    # workflow once, readable anywhere), not outage handling, so no 5 s client timeout.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")


@pytest.fixture(scope="module")
def two_servers(
    tmp_path_factory: pytest.TempPathFactory, postgres_cluster: PostgresCluster | None
) -> Iterator[tuple[list[MlflowServer], S3Server]]:
    if not IN_CI:  # CI installs the dev extra: there a missing moto is a failure
        pytest.importorskip("moto.server", reason="pip install 'moto[server]' (dev extra)")
    root = tmp_path_factory.mktemp("scale-out")
    if postgres_cluster is not None:
        backend = postgres_cluster.create_database(f"mlflow_{uuid.uuid4().hex[:8]}")
    else:
        backend = f"sqlite:///{root / 'server.db'}"
    s3 = S3Server(BUCKET, root)
    s3.start()
    servers = [MlflowServer(backend, root / f"artifacts-{i}", artifacts_destination=f"s3://"
                            f"{BUCKET}", env=s3.env) for i in range(2)]
    try:
        for server in servers:
            server.start()
            # The first API call initialises the store in the server (seconds on a loaded
            # host): outside the test's 5 s client timeout, as for a long-running server.
            requests.get(f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1",
                         timeout=120).raise_for_status()
        yield servers, s3
    finally:
        for server in servers:
            server.stop()
        s3.stop()


def test_writers_spread_over_two_servers_land_once_and_read_back_anywhere(two_servers,
                                                                          tmp_path):
    servers, s3 = two_servers
    experiment = f"scale-{uuid.uuid4().hex[:6]}"
    handlers = [server_handler(s.url, experiment, tmp_path / f"w{i}")
                for i, s in enumerate(servers)]
    for n in range(6):  # round-robin, as a load balancer would
        timed_invokes(handlers[n % 2], 1, offset=n)
    for handler in handlers:
        assert handler.flush(120)
        handler.close(30)
    keys = s3.objects()
    for server in servers:
        client = MlflowClient(server.url)
        assert_exactly_once(client, experiment, range(6))
        _assert_traces_match_runs(client, experiment, 6)
        parents, _ = runs_of(client, experiment)
        for parent in parents:
            assert any(k.endswith(f"{parent.info.run_id}/artifacts/inputs.json") for k in keys)
