"""Exactly once when the network lies: a real ``mlflow server`` behind a fault proxy.

The proxy (tests/fault_proxy.py) forwards each write to the real server, which executes
it, and then loses the response (an RST) or answers 500: the client cannot know whether
its write happened. Our writer owns its retries and looks a run up by its identity tag
before creating it again, so the counts below are exact, not "rarely off".
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from configurable_agents.config import MLFlowConfig
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.sinks.mlflow.client import OneShotRestStore, build_client
from configurable_agents.reports.reporting import cost_report
from tests.fault_proxy import FaultProxy, Faults
from tests.servers import MlflowServer
from tests.test_reliability import assert_exactly_once, timed_invokes


def proxied_handler(url: str, experiment: str, tmp_path: Path, **config) -> MLflowCallbackHandler:
    return MLflowCallbackHandler(MLFlowConfig(
        enabled=True, tracking_uri=url, experiment_name=experiment,
        spool_dir=str(tmp_path / "spool"), **config))


def test_writer_client_sends_each_request_once(mlflow_server: MlflowServer):
    """MLflow's own retries are off for our client only (the app's client keeps its own)."""
    ours = build_client(mlflow_server.url, timeout_s=3)
    assert isinstance(ours._tracking_client.store, OneShotRestStore)
    assert not isinstance(MlflowClient(mlflow_server.url)._tracking_client.store,
                          OneShotRestStore)
    with FaultProxy(mlflow_server.port, Faults(refuse=1.0, refuse_status=503)) as proxy:
        client = build_client(proxy.url, timeout_s=3)
        with pytest.raises(Exception):  # noqa: B017 - any MLflow error: one attempt, no retry
            client.create_experiment(f"once-{uuid.uuid4().hex[:6]}")
        assert proxy.count("refuse") == 1


def test_lost_responses_never_duplicate_runs(mlflow_server: MlflowServer, tmp_path: Path):
    """100 workflows, 10% of write responses lost after commit (and 3% answered 500 after
    commit): exactly 100 parent runs, none RUNNING, no duplicate node, costs count 100."""
    experiment = f"lossy-{uuid.uuid4().hex[:6]}"
    faults = Faults(lose=0.10, error_after=0.03)
    with FaultProxy(mlflow_server.port, faults) as proxy:
        handler = proxied_handler(proxy.url, experiment, tmp_path, export_workers=4)
        try:
            timed_invokes(handler, 100)
            # flush() says False while anything is only in the spool (a retry budget spent
            # on a slow, lossy server trips the breaker); flushing again replays it.
            deadline = time.monotonic() + 600
            while not handler.flush(60):
                assert time.monotonic() < deadline, handler.stats()
        finally:
            handler.close(30)
        assert proxy.count("lose") >= 50  # the faults really happened, many times
        assert proxy.count("error_after") >= 10
    client = MlflowClient(mlflow_server.url)
    assert_exactly_once(client, experiment, range(100))
    report = cost_report(tracking_uri=mlflow_server.url, experiments=[experiment])
    assert report.totals.runs == 100


def test_deleted_experiment_is_restored_not_rejected(mlflow_store: str, experiment_name: str,
                                                     tmp_path: Path):
    """An experiment deleted while the app runs: the next workflows land in it (restored),
    none goes to rejected/."""
    handler = proxied_handler(mlflow_store, experiment_name, tmp_path)
    client = MlflowClient(mlflow_store)
    try:
        timed_invokes(handler, 1)
        assert handler.flush(60)
        client.delete_experiment(client.get_experiment_by_name(experiment_name).experiment_id)
        timed_invokes(handler, 2, offset=1)  # the process still has the old id cached
        assert handler.flush(60)
        stats = handler.stats()
        assert stats.rejected == 0 and stats.spooled == 0
    finally:
        handler.close(30)
    assert not list((tmp_path / "spool" / "rejected").glob("*.json"))
    assert client.get_experiment_by_name(experiment_name).lifecycle_stage == "active"
    assert_exactly_once(client, experiment_name, range(3))


def test_trace_requests_are_sent_once_and_a_refused_batch_is_replayed(
    mlflow_server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The trace writer's requests bypass MLflow's process-wide retries too.

    With ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=3`` (an app's setting), MLflow's own
    ``log_spans`` would send each refused batch 4 times per attempt and hold the worker
    through its backoff; ours sends it once per attempt (two attempts, then the batch
    is spooled) and the replay completes the trace once the server takes spans again.
    """
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    experiment = f"spans-once-{uuid.uuid4().hex[:6]}"
    faults = Faults(refuse=1.0, refuse_status=503, path_contains="/v1/traces")
    with FaultProxy(mlflow_server.port, faults) as proxy:
        handler = proxied_handler(proxy.url, experiment, tmp_path, log_traces=True)
        timed_invokes(handler, 1)
        assert handler.flush(30) is False  # the spans are only in the spool
        # Two batch attempts and a replay or two, one request each; MLflow's own retries
        # would have sent 4 per attempt (8 for the batch's two attempts alone).
        assert 3 <= proxy.count("refuse") <= 4
        faults.refuse = 0.0
        assert handler.flush(60) is True
        handler.close(30)
    client = MlflowClient(mlflow_server.url)
    assert_exactly_once(client, experiment, range(1))
    exp = client.get_experiment_by_name(experiment)
    traces = client.search_traces(locations=[exp.experiment_id])
    assert len(traces) == 1 and len(traces[0].data.spans) >= 3  # workflow, 2 nodes (+ calls)
