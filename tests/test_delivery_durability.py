"""``durability: disk``: a real process SIGKILLed with its exports in flight loses nothing.

The child process finishes its workflows against an MLflow server whose run writes the
proxy holds, so every workflow is still queued or in flight when the child is killed
(SIGKILL: no atexit, no flush). With ``disk`` each one was journaled (a spool file
claimed by the child) before ``invoke`` returned; `configurable-agents sync` takes over
the dead child's claims and writes every workflow exactly once, including the requests
the proxy still held and let through after the kill. Sampled-out workflows (folded into
rollups in memory) survive the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from configurable_agents.cli import app as cli_app
from configurable_agents.observability.sinks.spool import Spool
from configurable_agents.reports.reporting import cost_report
from tests.fault_proxy import FaultProxy, Faults
from tests.servers import MlflowServer
from tests.test_reliability import assert_exactly_once

REPO = Path(__file__).resolve().parents[1]

CHILD = """
    import sys, time
    from configurable_agents.config import MLFlowConfig
    from configurable_agents.observability import MLflowCallbackHandler
    from tests.test_reliability import timed_invokes

    url, experiment, spool, count, rate, traces = sys.argv[1:7]
    handler = MLflowCallbackHandler(MLFlowConfig(
        enabled=True, tracking_uri=url, experiment_name=experiment, spool_dir=spool,
        durability="disk", export_workers=2, sample_rate=float(rate), rollup_bucket_s=3600,
        log_traces=traces == "traces"))
    timed_invokes(handler, int(count))
    print("finished", flush=True)
    time.sleep(600)
"""


def kill_after_finishing(url: str, experiment: str, spool: Path, count: int,
                         sample_rate: float = 1.0, traces: bool = False,
                         settle_s: float = 0.3) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), url, experiment, str(spool),
         str(count), str(sample_rate), "traces" if traces else "no-traces"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "finished", child.stderr.read() if child.stderr else ""
        time.sleep(settle_s)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)


def sync(url: str, spool: Path) -> None:
    result = CliRunner().invoke(cli_app, ["sync", "--tracking-uri", url, "--spool-dir",
                                          str(spool)])
    assert result.exit_code == 0, result.output
    assert len(Spool(spool)) == 0


def test_sigkill_with_exports_in_flight_loses_nothing(mlflow_server: MlflowServer,
                                                      tmp_path: Path):
    experiment = f"durable-{uuid.uuid4().hex[:6]}"
    spool = tmp_path / "spool"
    with FaultProxy(mlflow_server.port, Faults(delay_s=120, path_contains="/runs/")) as proxy:
        kill_after_finishing(proxy.url, experiment, spool, 40)
        claimed = [p for p in spool.iterdir() if ".claimed-" in p.name]
        assert len(claimed) == 40  # every finished workflow on disk, owned by the dead child
        proxy.release_held()  # the held writes of the dead child reach the server now
        time.sleep(1.0)
    sync(mlflow_server.url, spool)
    assert_exactly_once(MlflowClient(mlflow_server.url), experiment, range(40))


def test_sigkill_keeps_the_rollup_share_of_sampled_out_workflows(mlflow_server: MlflowServer,
                                                                 tmp_path: Path):
    """Sampled out (folded in memory, exporter idle): after the kill and a sync, every
    workflow still counts once in the cost report, so exact totals stay exact."""
    experiment = f"durable-rollup-{uuid.uuid4().hex[:6]}"
    spool = tmp_path / "spool"
    kill_after_finishing(mlflow_server.url, experiment, spool, 12, sample_rate=0.0)
    sync(mlflow_server.url, spool)
    report = cost_report(tracking_uri=mlflow_server.url, experiments=[experiment])
    assert report.totals.runs == 12


def test_sigkill_while_span_batches_wait_loses_no_trace(mlflow_server: MlflowServer,
                                                         tmp_path: Path):
    """Runs and trace infos landed, the spans' batch is held by the network when the
    process dies: each journal stays until its spans land, so `sync` writes the traces
    (found runs are not re-made) and every trace has its spans."""
    experiment = f"durable-spans-{uuid.uuid4().hex[:6]}"
    spool = tmp_path / "spool"
    with FaultProxy(mlflow_server.port, Faults(delay_s=120, path_contains="/v1/traces")) as proxy:
        kill_after_finishing(proxy.url, experiment, spool, 6, traces=True, settle_s=8.0)
        claimed = [p for p in spool.iterdir() if ".claimed-" in p.name]
        assert len(claimed) == 6  # runs written, spans held: every journal kept
    sync(mlflow_server.url, spool)
    client = MlflowClient(mlflow_server.url)
    assert_exactly_once(client, experiment, range(6))
    exp = client.get_experiment_by_name(experiment)
    traces = client.search_traces(locations=[exp.experiment_id])
    assert len(traces) == 6
    assert all(len(t.data.spans) >= 3 for t in traces)  # workflow + 2 nodes (+ calls)
