"""Honest counters and deadlines: short writes are failures, timeouts are promises.

Real faults: a file-size limit (``RLIMIT_FSIZE``, what a full disk looks like to
``write``) in a real subprocess; an OTLP collector that accepts connections and never
answers; an ``mlflow server`` behind a proxy that holds every write for a minute.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from configurable_agents.cli import app as cli_app
from configurable_agents.config.otel_config import OTelConfig
from configurable_agents.config.schema import ObservabilityConfig
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.sinks.spool import Spool
from tests.fault_proxy import FaultProxy, Faults
from tests.servers import MlflowServer
from tests.test_delivery_faults import proxied_handler
from tests.test_reliability import assert_exactly_once, timed_invokes

REPO = Path(__file__).resolve().parents[1]
MARGIN_S = 0.5  # the deadline helper's margin is 0.05 s; the rest is a loaded test machine


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


SHORT_WRITE = """
    import json, os, resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() returns short / EFBIG instead
    from configurable_agents.config.schema import JsonlConfig, ObservabilityConfig
    from configurable_agents.observability import MLflowCallbackHandler
    from tests.fakes import repeating
    from tests.test_handler_shapes import article_writer

    path = sys.argv[1]
    handler = MLflowCallbackHandler(ObservabilityConfig(jsonl=JsonlConfig(
        enabled=True, path=path, include_artifacts=True)))
    app = article_writer(repeating("x" * 3000, 10, 5))
    run = lambda topic: app.invoke({"topic": topic}, config={"callbacks": [handler]})
    run("a"); assert handler.flush(30)
    size = os.path.getsize(path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + size // 2, hard))  # the disk fills
    run("b"); run("c"); handler.flush(30)
    full = handler.stats().sinks["jsonl"].as_dict()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # room again
    run("d"); handler.flush(30)
    print(json.dumps({"full": full, "after": handler.stats().sinks["jsonl"].as_dict()}))
"""


def test_jsonl_short_write_is_a_failure_and_the_file_stays_line_aligned(tmp_path: Path):
    path = tmp_path / "facts.jsonl"
    done = run_python(SHORT_WRITE, str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["full"]["exported"] == 1 and counts["full"]["failed"] == 2
    assert counts["after"]["exported"] == 2 and counts["after"]["failed"] == 2
    lines = path.read_text(encoding="utf-8").splitlines()
    ids = {json.loads(line)["langchain_run_id"] for line in lines}
    assert len(lines) == 2 and len(ids) == 2  # every line parses; no partial line left


def test_otel_flush_returns_within_its_timeout_when_the_collector_never_answers():
    with socket.socket() as hole:  # accepts (the kernel's backlog), never reads or answers
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        port = hole.getsockname()[1]
        handler = MLflowCallbackHandler(ObservabilityConfig(otel=OTelConfig(
            enabled=True, endpoint=f"http://127.0.0.1:{port}", timeout_s=30)))
        from tests.fakes import repeating
        from tests.test_handler_shapes import article_writer

        app = article_writer(repeating("t", 10, 5))
        app.invoke({"topic": "x"}, config={"callbacks": [handler]})
        started = time.monotonic()
        landed = handler.flush(timeout=1.0)
        assert time.monotonic() - started < 1.0 + MARGIN_S
        assert landed is False  # nothing reached a collector, and flush says so
        started = time.monotonic()
        assert handler.close(timeout=1.0) is False
        assert time.monotonic() - started < 1.0 + MARGIN_S


def test_mlflow_close_keeps_its_deadline_and_spools_each_workflow_once(
    mlflow_server: MlflowServer, tmp_path: Path
):
    """close(2) against a server that holds every write: back in time, False, and each
    workflow in the spool once (the in-flight ones claimed by us, not replayable by
    anyone while we live); later `sync` writes them exactly once."""
    experiment = f"deadline-{uuid.uuid4().hex[:6]}"
    client = MlflowClient(mlflow_server.url)
    client.create_experiment(experiment)  # so only run writes are held
    faults = Faults(delay_s=60.0, path_contains="/runs/")
    with FaultProxy(mlflow_server.port, faults) as proxy:
        handler = proxied_handler(proxy.url, experiment, tmp_path, export_workers=2,
                                  request_timeout_s=120)
        timed_invokes(handler, 6)
        time.sleep(0.5)  # two workers are now inside a held request
        started = time.monotonic()
        landed = handler.close(2.0)
        elapsed = time.monotonic() - started
        spool = Spool(tmp_path / "spool")
        names = [p.name for p in spool.directory.iterdir()
                 if p.name.endswith(".json") or ".json.claimed-" in p.name]
        ids = [n.split("-", 1)[1].rsplit("-", 1)[0] for n in names]
        assert elapsed < 2.0 + MARGIN_S and landed is False
        assert len(names) == 6 and len(set(ids)) == 6  # every workflow once, none twice
        # The two in flight are claimed by us (and an idle worker may hold a replay claim).
        assert sum(".claimed-" in n for n in names) >= 2
        proxy.release_held()  # the server answers again; the held writes go through
        deadline = time.monotonic() + 60
        while any(".claimed-" in p.name for p in spool.directory.iterdir()):
            assert time.monotonic() < deadline, "the in-flight workers never finished"
            time.sleep(0.2)
    result = CliRunner().invoke(cli_app, ["sync", "--tracking-uri", mlflow_server.url,
                                          "--spool-dir", str(tmp_path / "spool")])
    assert result.exit_code == 0, result.output
    assert len(Spool(tmp_path / "spool")) == 0
    assert_exactly_once(client, experiment, range(6))
