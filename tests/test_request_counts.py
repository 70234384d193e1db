"""Requests per workflow, counted on the wire, and batched traces read back (issue #30).

A real ``mlflow server`` (the session's, on sqlite) behind :class:`CountingProxy`. The
floor is the hand-written runs-only ``MlflowClient`` sequence of the benchmarks
(``benchmarks/baseline.py``). Ours must ask no more per workflow than the floor, and with
traces on at most a small fraction more: the trace info is one request per workflow, the
spans of many workflows share one ``/v1/traces`` request. The traces read back through
``MlflowClient`` with their token usage, cost and run link, and a retried span batch (the
server took it, the answer was lost) never duplicates a trace or doubles its usage.
"""

from __future__ import annotations

import json
import uuid

import pytest
from benchmarks.baseline import write_workflow
from mlflow.tracking import MlflowClient

from configurable_agents.observability.sinks.mlflow import traces as trace_module
from tests.counting_proxy import CountingProxy
from tests.test_handler_shapes import runs_of
from tests.test_reliability import assert_exactly_once, server_handler, timed_invokes
from tests.test_traces import trace_of_run

N = 6
TRACE_INFO = "POST /api/3.0/mlflow/traces"
SPAN_BATCH = "POST /v1/traces"


@pytest.fixture(autouse=True)
def _quiet_and_batched(monkeypatch: pytest.MonkeyPatch) -> None:
    # A hand-written sequence would not print a "View run" line (one runs/get) per run.
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # Batches go out on flush only, so the count does not depend on this machine's speed.
    monkeypatch.setattr(trace_module, "TRACE_BATCH_MAX_WAIT_S", 600.0)


def _ours(proxy: CountingProxy, tmp_path, experiment: str, **config) -> tuple[int, dict]:
    """Requests for N workflows through our handler (after one warm-up workflow)."""
    handler = server_handler(proxy.url, experiment, tmp_path / experiment, **config)
    timed_invokes(handler, 1)
    assert handler.flush(120)
    proxy.reset()
    timed_invokes(handler, N, offset=1)
    assert handler.flush(120)
    total, counts = proxy.total(), dict(proxy.counts())
    stats = handler.stats().sinks["mlflow"]
    handler.close(30)
    assert stats.spooled == 0 and stats.failed == 0
    return total, counts


def test_requests_per_workflow_against_the_hand_written_floor(mlflow_server, tmp_path):
    with CountingProxy(mlflow_server.port) as proxy:
        client = MlflowClient(proxy.url)
        experiment_id = client.create_experiment(f"floor-{uuid.uuid4().hex[:6]}")
        write_workflow(client, experiment_id)
        proxy.reset()
        for _ in range(N):
            write_workflow(client, experiment_id)
        floor = proxy.total() / N

        runs_only, counts = _ours(proxy, tmp_path, f"runs-{uuid.uuid4().hex[:6]}",
                                  log_traces=False)
        # Tags and start time at create, one log_batch, one update per run; artifacts go
        # to the URI create_run returned, so no runs/get at all.
        assert counts["POST /api/2.0/mlflow/runs/create"] == 3 * N
        assert counts["POST /api/2.0/mlflow/runs/log-batch"] == 3 * N
        assert counts["POST /api/2.0/mlflow/runs/update"] == 3 * N
        assert "GET /api/2.0/mlflow/runs/get" not in counts
        assert runs_only / N < floor

        with_traces, counts = _ours(proxy, tmp_path, f"traces-{uuid.uuid4().hex[:6]}")
        assert counts[TRACE_INFO] == N  # one trace info per workflow: its run link
        assert counts[SPAN_BATCH] == 1  # every workflow's spans in one request
        assert with_traces == runs_only + N + 1
        assert with_traces / N <= floor + 0.2


@pytest.mark.parametrize("where", ["server", "sqlite"])
def test_batched_traces_read_back_with_usage_cost_and_run(where, mlflow_server, mlflow_store,
                                                          tmp_path):
    uri = mlflow_server.url if where == "server" else mlflow_store
    experiment = f"read-back-{where}-{uuid.uuid4().hex[:6]}"
    handler = server_handler(uri, experiment, tmp_path)
    timed_invokes(handler, 3)
    assert handler.flush(120)
    handler.close(30)
    _assert_traces_match_runs(MlflowClient(uri), experiment, 3)


def _assert_traces_match_runs(client: MlflowClient, experiment: str, count: int) -> None:
    """One trace per parent run, linked both ways, with the run's usage and cost, all spans."""
    parents, _ = runs_of(client, experiment)
    assert len(parents) == count
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    all_traces = client.search_traces(locations=[exp.experiment_id], max_results=500)
    assert len(all_traces) == count, "a trace was duplicated or lost"
    for parent in parents:
        trace = client.get_trace(trace_of_run(client, experiment, parent).info.trace_id)
        metrics = parent.data.metrics
        usage = trace.info.token_usage
        assert usage is not None
        assert usage["input_tokens"] == metrics["total_input_tokens"]
        assert usage["output_tokens"] == metrics["total_output_tokens"]
        cost = json.loads(trace.info.trace_metadata["mlflow.trace.cost"])
        assert cost["total_cost"] == pytest.approx(metrics["total_cost_usd"])
        # The spans came in the batch: the workflow, its 2 nodes and their model calls.
        names = [span.name for span in trace.data.spans]
        assert {"research", "write"} <= set(names)
        assert len(names) == len(set(s.span_id for s in trace.data.spans)) >= 5


def test_a_retried_span_batch_never_duplicates_a_trace(mlflow_server, tmp_path):
    """The server stores the batch, the answer is lost, the batch is sent again."""
    experiment = f"retried-{uuid.uuid4().hex[:6]}"
    with CountingProxy(mlflow_server.port, drop_responses={SPAN_BATCH: 1}) as proxy:
        handler = server_handler(proxy.url, experiment, tmp_path)
        timed_invokes(handler, 4)
        assert handler.flush(120)
        stats = handler.stats().sinks["mlflow"]
        handler.close(30)
        assert proxy.counts()[SPAN_BATCH] == 2  # the lost answer, then the retry
    assert stats.spooled == 0
    client = MlflowClient(mlflow_server.url)
    assert_exactly_once(client, experiment, range(4))
    _assert_traces_match_runs(client, experiment, 4)


def test_a_span_batch_that_fails_twice_is_spooled_and_written_once(mlflow_server, tmp_path):
    """Both sends land but report failure: the workflows are spooled, replayed idempotently."""
    experiment = f"spooled-{uuid.uuid4().hex[:6]}"
    with CountingProxy(mlflow_server.port, drop_responses={SPAN_BATCH: 2}) as proxy:
        handler = server_handler(proxy.url, experiment, tmp_path)
        timed_invokes(handler, 3)
        assert handler.flush(120)
        stats = handler.stats().sinks["mlflow"]
        handler.close(30)
    assert stats.spooled == 3 and stats.replayed == 3
    client = MlflowClient(mlflow_server.url)
    assert_exactly_once(client, experiment, range(3))
    _assert_traces_match_runs(client, experiment, 3)


def test_the_wire_counter_frames_keep_alive_and_chunked_requests():
    """The proxy's parser: bodies never read as requests, however the bytes are split."""
    from tests.counting_proxy import _RequestParser

    stream = (b"POST /a HTTP/1.1\r\nContent-Length: 20\r\n\r\nGET /not-a-request\r\n"
              b"PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nPOST \r\n0\r\n\r\n"
              b"GET /c?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    for size in (1, 7, len(stream)):
        parser, seen = _RequestParser(), []
        for start in range(0, len(stream), size):
            seen += parser.feed(stream[start:start + size])
        assert seen == [("POST", "/a"), ("PUT", "/b"), ("GET", "/c")]
