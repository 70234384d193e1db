"""The team setup for real: ``mlflow server`` on PostgreSQL with artifacts in S3.

moto's S3 server (PyPI ``moto[server]``) runs on loopback; ``mlflow server
--artifacts-destination s3://BUCKET --serve-artifacts --workers 2`` proxies artifacts to
it. Parallel writers (``export_workers``) write every workflow exactly once, artifacts
land in the bucket and read back through the server's API, and an S3 outage behaves
like a tracking-server outage: workflows are spooled and drained, nothing lost.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.servers import MlflowServer, PostgresCluster, S3Server
from tests.test_handler_shapes import runs_of
from tests.test_reliability import assert_exactly_once, server_handler, timed_invokes

IN_CI = os.environ.get("CI", "").lower() == "true"
BUCKET = "team-artifacts"


@pytest.fixture(scope="module")
def s3_team_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_cluster: PostgresCluster | None
) -> Iterator[tuple[MlflowServer, S3Server]]:
    if not IN_CI:  # CI installs the dev extra: there a missing moto is a failure
        pytest.importorskip("moto.server", reason="pip install 'moto[server]' (dev extra)")
    root = tmp_path_factory.mktemp("s3-team")
    if postgres_cluster is not None:
        backend = postgres_cluster.create_database(f"mlflow_{uuid.uuid4().hex[:8]}")
    else:
        backend = f"sqlite:///{root / 'server.db'}"
    s3 = S3Server(BUCKET, root)
    s3.start()
    # Fail fast while S3 is down (boto3 would retry each upload for seconds).
    server = MlflowServer(backend, root / "artifacts", artifacts_destination=f"s3://{BUCKET}",
                          env={**s3.env, "AWS_MAX_ATTEMPTS": "1"}, workers=2)
    try:
        server.start()
        server.backend = backend  # type: ignore[attr-defined]
        yield server, s3
    finally:
        server.stop()
        s3.stop()


def test_parallel_writers_put_artifacts_in_s3_exactly_once(s3_team_server, tmp_path):
    server, s3 = s3_team_server
    if IN_CI:
        assert server.backend.startswith("postgresql://")  # type: ignore[attr-defined]
    experiment = f"s3-{uuid.uuid4().hex[:6]}"
    handler = server_handler(server.url, experiment, tmp_path, export_workers=4)
    sink = handler._pipeline.sink("mlflow")
    assert sink is not None and sink.workers == 4  # the URI default is several too
    timed_invokes(handler, 12)
    assert handler.flush(120)
    client = MlflowClient(server.url)
    assert_exactly_once(client, experiment, range(12))
    parents, _ = runs_of(client, experiment)
    keys = s3.objects()
    for parent in parents:
        assert any(k.endswith(f"{parent.info.run_id}/artifacts/inputs.json") for k in keys)
    inputs = client.download_artifacts(parents[0].info.run_id, "inputs.json", str(tmp_path))
    assert json.loads(Path(inputs).read_text())["topic"].startswith("topic-")
    handler.close()


def test_s3_outage_spools_and_loses_nothing(s3_team_server, tmp_path):
    server, s3 = s3_team_server
    experiment = f"s3-outage-{uuid.uuid4().hex[:6]}"
    handler = server_handler(server.url, experiment, tmp_path, export_workers=4)
    client = MlflowClient(server.url)
    try:
        timed_invokes(handler, 2)
        assert handler.flush(120)
        s3.stop()
        timed_invokes(handler, 4, offset=2)  # the app is unaffected
        assert not handler.flush(60)  # not in MLflow yet: the artifacts had nowhere to go
        assert handler.stats().sinks["mlflow"].spooled >= 4
        # An artifact-store outage trips the breaker like a tracking outage: /health says
        # up, so the probe also lists the failed run's artifacts and stays down meanwhile.
        sink = handler._pipeline.sink("mlflow")
        assert sink is not None and not sink.up
        assert sink.writer.artifacts_failing is not None
        assert sink.probe() is False and not sink.up
        s3.start()  # back (moto starts empty: the bucket is recreated)
        assert sink.probe() is True and sink.up
        assert handler.flush(120)
        assert_exactly_once(client, experiment, range(6))
        parents, _ = runs_of(client, experiment)
        later = [p for p in parents if int(p.data.metrics["total_input_tokens"]) // 2 - 1000 >= 2]
        assert len(later) == 4
        for parent in later:
            path = client.download_artifacts(parent.info.run_id, "inputs.json", str(tmp_path))
            assert json.loads(Path(path).read_text())["topic"].startswith("topic-")
    finally:
        handler.close()
