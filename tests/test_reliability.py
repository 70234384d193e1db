"""A slow or dead MLflow never hurts the app, and no finished workflow is lost or duplicated.

Runs against a real ``mlflow server`` backed by a real PostgreSQL cluster (Debian's
``postgresql``). Locally, without PostgreSQL, the server falls back to sqlite; in CI
(``CI=true``) a missing PostgreSQL fails these tests instead of skipping them.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from configurable_agents.cli import app as cli_app
from configurable_agents.config import MLFlowConfig
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter
from configurable_agents.observability.sinks.run_plan import RunPlan
from configurable_agents.observability.sinks.spool import Spool
from tests.fakes import repeating
from tests.servers import LatencyProxy, MlflowServer, PostgresCluster
from tests.test_handler_shapes import article_writer, children, runs_of
from tests.test_traces import trace_of_run

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def team_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_cluster: PostgresCluster | None
) -> Iterator[MlflowServer]:
    """The documented team setup: mlflow server + PostgreSQL + a local artifact root."""
    root = tmp_path_factory.mktemp("team-server")
    if postgres_cluster is not None:
        backend = postgres_cluster.create_database(f"mlflow_{uuid.uuid4().hex[:8]}")
    else:
        backend = f"sqlite:///{root / 'server.db'}"
    server = MlflowServer(backend, root / "artifacts")
    server.start()
    server.backend = backend  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


def server_handler(url: str, experiment: str, tmp_path: Path, **config) -> MLflowCallbackHandler:
    return MLflowCallbackHandler(
        MLFlowConfig(
            enabled=True,
            tracking_uri=url,
            experiment_name=experiment,
            spool_dir=str(tmp_path / "spool"),
            **config,
        )
    )


def timed_invokes(handler: MLflowCallbackHandler, count: int, offset: int = 0) -> list[float]:
    """Invoke the article writer ``count`` times; return each caller-side latency."""
    latencies = []
    for n in range(offset, offset + count):
        app = article_writer(repeating("t", 1000 + n, 5))
        started = time.perf_counter()
        out = app.invoke({"topic": f"topic-{n}"}, config={"callbacks": [handler]})
        latencies.append(time.perf_counter() - started)
        assert out["article"] == "t"
    return latencies


def assert_exactly_once(client: MlflowClient, experiment: str, topics: range) -> None:
    parents, nodes = runs_of(client, experiment)
    ids = [p.data.tags["langchain_run_id"] for p in parents]
    assert len(ids) == len(set(ids)), "duplicate parent runs"
    assert len(parents) == len(topics)
    assert len(nodes) == 2 * len(topics)
    seen = set()
    for parent in parents:
        assert parent.info.status == "FINISHED"
        assert set(children(nodes, parent)) == {"research", "write"}
        n = int(parent.data.metrics["total_input_tokens"]) // 2 - 1000
        seen.add(n)
    assert seen == set(topics)


def test_team_server_on_postgres_round_trip(team_server, tmp_path):
    if IN_CI:
        assert team_server.backend.startswith("postgresql://")  # type: ignore[attr-defined]
    experiment = f"team-{uuid.uuid4().hex[:6]}"
    handler = server_handler(team_server.url, experiment, tmp_path)
    timed_invokes(handler, 3)
    assert handler.flush(120)
    client = MlflowClient(team_server.url)
    assert_exactly_once(client, experiment, range(3))
    parent = runs_of(client, experiment)[0][0]
    inputs = client.download_artifacts(parent.info.run_id, "inputs.json")
    assert json.loads(Path(inputs).read_text())["topic"].startswith("topic-")
    handler.close()


def test_outage_spools_then_drains_by_itself_exactly_once(team_server, tmp_path):
    experiment = f"outage-{uuid.uuid4().hex[:6]}"
    handler = server_handler(team_server.url, experiment, tmp_path)
    other_spool = tmp_path / "other-spool"
    client = MlflowClient(team_server.url)
    try:
        before = timed_invokes(handler, 5)
        assert handler.flush(120)
        team_server.stop()  # the outage starts in the middle of the batch
        during = timed_invokes(handler, 15, offset=5)
        # A second process-like handler that exits during the outage: its work is spooled.
        leaving = MLflowCallbackHandler(
            MLFlowConfig(
                enabled=True,
                tracking_uri=team_server.url,
                experiment_name=experiment,
                spool_dir=str(other_spool),
                flush_timeout_s=1,
            )
        )
        timed_invokes(leaving, 3, offset=20)
        assert leaving.close(timeout=5) is False
        assert len(Spool(other_spool)) == 3
        assert handler.flush(30) is False  # not in MLflow yet: spooled
        stats = handler.stats()
        assert stats.spooled == 15 and stats.dropped == 0 and stats.failed == 0
        assert not stats.backend_up
        # The caller never waited on the dead backend.
        assert max(during) < 2.0, during
        assert sorted(during)[len(during) // 2] < 5 * max(sorted(before)[2], 0.05)
    finally:
        team_server.start()
    # Back up: the exporter finds it by itself and drains its spool, without flush().
    deadline = time.monotonic() + 120
    while handler.stats().replayed < 15 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert handler.stats().replayed == 15
    assert len(Spool(tmp_path / "spool")) == 0
    # The other process's spool: `configurable-agents sync` on demand.
    result = CliRunner().invoke(
        cli_app, ["sync", "--tracking-uri", team_server.url, "--spool-dir", str(other_spool)]
    )
    assert result.exit_code == 0, result.output
    assert "Synced 3 of 3 spooled workflows (with 3 traces)" in result.output
    assert_exactly_once(client, experiment, range(23))
    # Spooled or not, every workflow has its trace, linked both ways, with its node spans.
    parents, _ = runs_of(client, experiment)
    for parent in parents:
        trace = trace_of_run(client, experiment, parent)
        assert trace.info.state == "OK"
        assert {"research", "write"} <= {span.name for span in trace.data.spans}
        tokens = json.loads(trace.info.trace_metadata["mlflow.trace.tokenUsage"])
        assert tokens["input_tokens"] == parent.data.metrics["total_input_tokens"]
        assert tokens["output_tokens"] == parent.data.metrics["total_output_tokens"]
    again = CliRunner().invoke(
        cli_app, ["sync", "--tracking-uri", team_server.url, "--spool-dir", str(other_spool)]
    )
    assert "Nothing to sync" in again.output
    handler.close()


def test_partial_write_is_completed_not_duplicated(team_server, tmp_path):
    """A workflow half-written before a crash is completed by the replay, not written twice."""
    experiment = f"partial-{uuid.uuid4().hex[:6]}"
    writer = MlflowWriter(team_server.url)
    experiment_id = writer.experiment_id(experiment)
    now = int(time.time() * 1000)
    lc_id = str(uuid.uuid4())

    def node(name: str) -> RunPlan:
        return RunPlan(
            run_name=f"node_{name}",
            start_ms=now,
            end_ms=now + 5,
            status="FINISHED",
            params={"node_id": name},
            metrics={"input_tokens": 7.0},
            tags={"configurable_agents.kind": "node", "langchain_run_id": name + lc_id},
        )

    plan = RunPlan(
        run_name="wf",
        start_ms=now,
        end_ms=now + 10,
        status="FINISHED",
        params={"workflow_name": "wf"},
        metrics={"total_input_tokens": 14.0},
        tags={"configurable_agents.kind": "workflow", "langchain_run_id": lc_id},
        children=[node("a"), node("b")],
    )
    # The crash: parent created and completed, first child created but left RUNNING.
    parent_id = writer.create_run(experiment_id, plan)
    writer.complete_run(parent_id, plan)
    writer.create_run(experiment_id, plan.children[0], parent_id)
    spool = Spool(tmp_path / "spool")
    spool.put(experiment, lc_id, None, plan)
    result = CliRunner().invoke(
        cli_app, ["sync", "--tracking-uri", team_server.url, "--spool-dir", str(tmp_path / "spool")]
    )
    assert result.exit_code == 0, result.output
    parents, nodes = runs_of(MlflowClient(team_server.url), experiment)
    assert [p.info.run_id for p in parents] == [parent_id]
    assert sorted(n.data.params["node_id"] for n in nodes) == ["a", "b"]
    assert all(n.info.status == "FINISHED" for n in nodes)


def test_slow_backend_never_slows_the_caller_and_never_drops(team_server, tmp_path):
    experiment = f"slow-{uuid.uuid4().hex[:6]}"
    with LatencyProxy(team_server.port, delay=0.5) as proxy:
        handler = server_handler(proxy.url, experiment, tmp_path, queue_size=2)
        latencies = timed_invokes(handler, 12)
        # Each backend request takes >= 0.5 s; the caller never waits for one.
        assert max(latencies) < 2.0, latencies
        stats = handler.stats()
        assert stats.dropped == 0
        proxy.delay = 0
        assert handler.flush(180)
        stats = handler.stats()
        assert stats.exported + stats.replayed == 12
        assert stats.dropped == 0
        assert_exactly_once(MlflowClient(team_server.url), experiment, range(12))
        handler.close()


SCRIPT = textwrap.dedent("""
    import sys, time
    from typing import TypedDict
    from langgraph.graph import END, START, StateGraph
    from configurable_agents.config import MLFlowConfig
    from configurable_agents.observability import MLflowCallbackHandler
    from tests.fakes import repeating

    class S(TypedDict, total=False):
        text: str

    uri, experiment, spool, count, sleep_s = sys.argv[1:6]
    model = repeating("hello", 21, 7)

    def greet(state):
        time.sleep(float(sleep_s))
        return {"text": model.invoke("hi").content}

    g = StateGraph(S)
    g.add_node("greet", greet)
    g.add_edge(START, "greet")
    g.add_edge("greet", END)
    app = g.compile()
    handler = MLflowCallbackHandler(MLFlowConfig(
        enabled=True, tracking_uri=uri, experiment_name=experiment, spool_dir=spool,
        flush_timeout_s=60 if "sqlite" in uri else 2))
    for _ in range(int(count)):
        app.invoke({}, config={"callbacks": [handler]})
    print("invoked", flush=True)
    # No flush, no close: the interpreter exits right away.
""")


def run_script(tmp_path: Path, *args: str, wait: bool = True) -> subprocess.Popen[str]:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    if wait:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "invoked" in out
    return proc


def test_process_exit_flushes_at_exit(tmp_path):
    uri = f"sqlite:///{tmp_path / 'exit.db'}"
    run_script(tmp_path, uri, "exit", str(tmp_path / "spool"), "5", "0")
    parents, nodes = runs_of(MlflowClient(uri), "exit")
    assert len(parents) == 5 and len(nodes) == 5


def test_process_exit_with_dead_backend_spools(tmp_path):
    from tests.servers import free_port

    run_script(
        tmp_path, f"http://127.0.0.1:{free_port()}", "exit", str(tmp_path / "spool"), "4", "0"
    )
    spooled = Spool(tmp_path / "spool").pending()
    assert len(spooled) == 4
    payload = json.loads(spooled[0].read_text())
    assert payload["plan"]["children"][0]["params"]["node_id"] == "greet"
    # The trace travels with the runs, so the replay can write it too.
    trace_id = f"tr-{uuid.UUID(payload['langchain_run_id']).hex}"
    assert payload["trace"]["info"]["trace_id"] == trace_id
    assert payload["plan"]["tags"]["configurable_agents.trace_id"] == trace_id


def test_sigkill_leaves_running_run_that_cleanup_stale_closes(tmp_path):
    uri = f"sqlite:///{tmp_path / 'kill.db'}"
    proc = run_script(tmp_path, uri, "killed", str(tmp_path / "spool"), "1", "120", wait=False)
    try:
        deadline = time.monotonic() + 180
        running = []
        while time.monotonic() < deadline and not running:
            time.sleep(0.5)
            try:
                client = MlflowClient(uri)
                exp = client.get_experiment_by_name("killed")
                if exp is not None:
                    running = client.search_runs(
                        [exp.experiment_id], filter_string="attributes.status = 'RUNNING'"
                    )
            except Exception:
                continue
        assert running, "the parent run should be visible while the workflow runs"
        assert running[0].data.tags["configurable_agents.pid"] == str(proc.pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    result = CliRunner().invoke(
        cli_app, ["cleanup", "--stale", "--tracking-uri", uri, "--experiment", "killed", "--yes"]
    )
    assert result.exit_code == 0, result.output
    run = MlflowClient(uri).get_run(running[0].info.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["configurable_agents.closed_by"] == "cleanup --stale"


def test_long_lived_handler_state_stays_empty(mlflow_store, experiment_name):
    handler = MLflowCallbackHandler(
        MLFlowConfig(
            enabled=True,
            tracking_uri=mlflow_store,
            experiment_name=experiment_name,
            log_artifacts=False,
            spool_dir=tempfile.mkdtemp(),
        )
    )
    app = article_writer(repeating("t", 10, 5))
    for _ in range(400):
        app.invoke({"topic": "x"}, config={"callbacks": [handler]})
        assert handler.stats().active_runs == 0
    assert handler.flush(600)
    stats = handler.stats()
    assert stats.active_runs == 0 and stats.pending_workflows == 0
    assert stats.exported == 400 and stats.spooled == 0
    assert len(handler._pipeline.sink("mlflow")._run_ids) <= 10_000
    handler.close()
