"""One owner per spooled workflow, across real processes, with a fault in the middle.

A handler spools 12 workflows while MLflow is down (close() must spool each once). Then
two `configurable-agents sync` processes and a live handler's drain replay the same
spool together through a proxy that loses 10% of write responses and slows every write;
one sync process is SIGKILLed midway, holding claims. A last `sync` takes over the dead
process's claims (its pid is gone) and every workflow lands exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from mlflow.tracking import MlflowClient

from configurable_agents.observability.sinks.spool import Spool
from configurable_agents.observability.sinks.spool_claims import claim_is_stale, claim_suffix
from tests.fault_proxy import FaultProxy, Faults
from tests.servers import MlflowServer
from tests.test_delivery_faults import proxied_handler
from tests.test_reliability import assert_exactly_once, timed_invokes

REPO = Path(__file__).resolve().parents[1]
COUNT = 12


def sync_process(url: str, spool_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    return subprocess.Popen(
        [sys.executable, "-m", "configurable_agents.cli", "sync", "--tracking-uri", url,
         "--spool-dir", str(spool_dir)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def spooled_ids(spool_dir: Path) -> list[str]:
    return [p.name.split("-", 1)[1].rsplit("-", 1)[0] for p in spool_dir.iterdir()
            if p.name.endswith(".json") or ".json.claimed-" in p.name]


def test_claims_of_live_owners_hold_and_dead_ones_are_taken_over(tmp_path: Path):
    mine = f"x.json{claim_suffix()}"
    assert not claim_is_stale(mine, stale_claim_s=0.0)  # a live owner, however old
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    token = claim_suffix().split(".claimed-", 1)[1]
    machine, _pid, ticks_and_time = token.split(".", 2)
    reused = f"x.json.claimed-{machine}.{os.getpid()}.1-{int(time.time())}"
    gone = f"x.json.claimed-{machine}.{dead.stdout.strip()}.{ticks_and_time}"
    assert claim_is_stale(gone, stale_claim_s=1e9)  # its process is dead
    assert claim_is_stale(reused, stale_claim_s=1e9)  # our pid, another process start
    other = f"x.json.claimed-0000000000.1.5-{int(time.time())}"
    assert not claim_is_stale(other, stale_claim_s=600)  # another machine: only by age
    assert claim_is_stale(other, stale_claim_s=600, now=time.time() + 601)


def test_many_processes_replaying_one_spool_write_each_workflow_once(
    mlflow_server: MlflowServer, tmp_path: Path
):
    experiment = f"owners-{uuid.uuid4().hex[:6]}"
    spool_dir = tmp_path / "spool"
    faults = Faults(down=True)
    with FaultProxy(mlflow_server.port, faults) as proxy:
        writer = proxied_handler(proxy.url, experiment, tmp_path, export_workers=2)
        timed_invokes(writer, COUNT)
        assert writer.close(10) is False  # MLflow is down: nothing landed, all spooled
        ids = spooled_ids(spool_dir)
        assert len(ids) == COUNT and len(set(ids)) == COUNT  # each workflow spooled once

        faults.down = False
        faults.lose, faults.delay_s = 0.10, 0.02  # lossy and slow: replays overlap
        live = proxied_handler(proxy.url, experiment, tmp_path, export_workers=2)
        live_sink = live._pipeline.sink("mlflow")
        assert live_sink is not None
        syncs = [sync_process(proxy.url, spool_dir) for _ in range(2)]
        drained = threading.Thread(target=lambda: live_sink.drain(force=True))
        drained.start()
        victim = syncs[0]
        deadline = time.monotonic() + 60
        while not any(".claimed-" in p.name for p in spool_dir.iterdir()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # the fault in the middle: a sync dies holding its claim
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(30)
        for proc in syncs[1:]:
            proc.wait(300)
        drained.join(300)
        for _ in range(3):  # takes over the dead one's claims (a lost response may stop one)
            final = sync_process(proxy.url, spool_dir)
            output, _ = final.communicate(timeout=300)
            if final.returncode == 0:
                break
        assert final.returncode == 0, output
        live.close(30)
        assert proxy.count("lose") > 0
    assert len(Spool(spool_dir)) == 0
    assert not [p for p in spool_dir.iterdir() if ".claimed-" in p.name]
    assert_exactly_once(MlflowClient(mlflow_server.url), experiment, range(COUNT))
