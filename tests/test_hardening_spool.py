"""A spool file is untrusted input (issue #15, items 2, 4, 5, 6, 7).

Real sqlite MLflow store, real spool folders, the real `sync` command and the real
background drain of a handler; hostile entries are real FIFOs, symlinks and files.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from configurable_agents.cli import app as cli_app
from configurable_agents.names import Kind, Tag
from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter
from configurable_agents.observability.sinks.run_plan import RunPlan
from configurable_agents.observability.sinks.spool import Spool, SpoolFullError
from tests.fakes import repeating
from tests.test_handler_shapes import make_handler, runs_of


def workflow_plan(lc_id: str, *, children: int = 1, **extra: object) -> RunPlan:
    now = int(time.time() * 1000)
    plan = RunPlan(
        run_name="wf",
        start_ms=now,
        end_ms=now + 10,
        status="FINISHED",
        params={"workflow_name": "wf"},
        metrics={"total_input_tokens": 14.0},
        tags={Tag.KIND: Kind.WORKFLOW, Tag.LANGCHAIN_RUN_ID: lc_id},
        children=[
            RunPlan(
                run_name=f"node_n{i}", start_ms=now, end_ms=now + 5, status="FINISHED",
                params={"node_id": f"n{i}"}, metrics={"input_tokens": 7.0},
                tags={Tag.KIND: Kind.NODE, Tag.LANGCHAIN_RUN_ID: f"{lc_id}-n{i}"},
            )
            for i in range(children)
        ],
    )
    for key, value in extra.items():
        setattr(plan, key, value)
    return plan


def sync(store: str, spool_dir: Path) -> object:
    return CliRunner().invoke(
        cli_app, ["sync", "--tracking-uri", store, "--spool-dir", str(spool_dir)]
    )


MALFORMED = {
    "list.json": "[1]",
    "null-plan.json": None,  # filled below: valid envelope, "plan": null
    "null-start.json": None,
    "metrics-list.json": None,
    "deep.json": "[" * 100_000 + "]" * 100_000,
    "truncated.json": None,
}


def malformed_files(experiment: str) -> dict[str, str]:
    good = {
        "version": 1, "experiment": experiment, "langchain_run_id": str(uuid.uuid4()),
        "mlflow_run_id": None, "plan": {
            "run_name": "x", "start_ms": 1, "end_ms": 2, "status": "FINISHED",
            "params": {}, "metrics": {}, "tags": {}, "artifacts": {}, "children": [],
        },
    }
    files = dict(MALFORMED)
    files["null-plan.json"] = json.dumps({**good, "plan": None})
    files["null-start.json"] = json.dumps({**good, "plan": {**good["plan"], "start_ms": None}})
    files["metrics-list.json"] = json.dumps({**good, "plan": {**good["plan"], "metrics": [1]}})
    files["truncated.json"] = json.dumps(good)[:-20]
    return files  # type: ignore[return-value]


# ---- item 6: private files ------------------------------------------------------------------


def test_spool_dir_is_0700_and_files_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        spool = Spool(tmp_path / "a" / "spool")
        path = spool.put("exp", str(uuid.uuid4()), None, workflow_plan("x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(spool.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# ---- item 4: malformed files never stop anything ------------------------------------------


def test_sync_sets_malformed_files_aside_and_replays_the_valid_ones(
    mlflow_store, experiment_name, mlflow_client, tmp_path
):
    spool = Spool(tmp_path / "spool")
    good_ids = [str(uuid.uuid4()) for _ in range(3)]
    for lc_id in good_ids:
        spool.put(experiment_name, lc_id, None, workflow_plan(lc_id))
    for name, body in malformed_files(experiment_name).items():
        (spool.directory / name).write_text(body)
    result = sync(mlflow_store, spool.directory)
    assert result.exit_code == 0, result.output
    set_aside = [line for line in result.output.splitlines() if line.startswith("Set aside")]
    assert len(set_aside) == len(MALFORMED)
    assert "Synced 3 of 9" in result.output
    parents, _ = runs_of(mlflow_client, experiment_name)
    assert sorted(p.data.tags[Tag.LANGCHAIN_RUN_ID] for p in parents) == sorted(good_ids)
    rejected = spool.directory / "rejected"
    assert sorted(p.name for p in rejected.glob("*.json")) == sorted(MALFORMED)
    assert all((rejected / f"{n}.reason.txt").read_text().strip() for n in MALFORMED)
    assert spool.pending() == []


def test_background_drain_survives_malformed_files(
    mlflow_store, experiment_name, mlflow_client, tmp_path
):
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir)
    spooled = [str(uuid.uuid4()) for _ in range(2)]
    for lc_id in spooled:
        spool.put(experiment_name, lc_id, None, workflow_plan(lc_id))
    for name, body in malformed_files(experiment_name).items():
        (spool_dir / name).write_text(body)
    handler = make_handler(mlflow_store, experiment_name, spool_dir=str(spool_dir))
    model = repeating()
    for i in range(4):
        model.invoke(f"q{i}", config={"callbacks": [handler]})
    assert handler.flush(60)
    deadline = time.monotonic() + 30
    while spool.pending() and time.monotonic() < deadline:
        time.sleep(0.2)
    stats = handler.stats()
    handler.close()
    parents, _ = runs_of(mlflow_client, experiment_name)
    ids = {p.data.tags[Tag.LANGCHAIN_RUN_ID] for p in parents}
    assert set(spooled) <= ids
    assert len(parents) == 6  # 4 live + 2 replayed
    assert stats.rejected == len(MALFORMED)
    assert stats.internal_errors == 0
    assert spool.pending() == []


def test_claims_of_a_dead_process_are_released_by_sync(
    mlflow_store, experiment_name, mlflow_client, tmp_path
):
    spool = Spool(tmp_path / "spool")
    lc_id = str(uuid.uuid4())
    path = spool.put(experiment_name, lc_id, None, workflow_plan(lc_id))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    os.rename(path, path.with_name(f"{path.name}.claimed-{dead}-{int(time.time())}"))
    result = sync(mlflow_store, spool.directory)
    assert result.exit_code == 0, result.output
    parents, _ = runs_of(mlflow_client, experiment_name)
    assert [p.data.tags[Tag.LANGCHAIN_RUN_ID] for p in parents] == [lc_id]


# ---- item 5: hostile entries ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_fifo_symlinks_and_huge_files_never_hang_or_exhaust_sync(
    mlflow_store, experiment_name, mlflow_client, tmp_path
):
    spool = Spool(tmp_path / "spool")
    lc_id = str(uuid.uuid4())
    spool.put(experiment_name, lc_id, None, workflow_plan(lc_id))
    os.mkfifo(spool.directory / "0-fifo.json")
    (spool.directory / "0-zero.json").symlink_to("/dev/zero")
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"secret": True}))
    (spool.directory / "0-link.json").symlink_to(outside)
    with open(spool.directory / "0-huge.json", "wb") as fh:
        fh.truncate(200 << 20)  # sparse: 200 MiB, over the per-file cap
    result = sync(mlflow_store, spool.directory)
    assert result.exit_code == 0, result.output
    assert "Skipped 0-fifo.json" in result.output
    assert "Skipped 0-zero.json" in result.output
    assert "0-huge.json" in result.output and "cap" in result.output
    parents, _ = runs_of(mlflow_client, experiment_name)
    assert [p.data.tags[Tag.LANGCHAIN_RUN_ID] for p in parents] == [lc_id]
    assert outside.exists() and json.loads(outside.read_text()) == {"secret": True}


# ---- item 2: forged files ------------------------------------------------------------------


def test_forged_spool_file_cannot_touch_another_experiments_run(
    mlflow_store, experiment_name, mlflow_client, tmp_path
):
    writer = MlflowWriter(mlflow_store)
    victim_exp = writer.experiment_id(experiment_name + "-victim")
    lc_id = str(uuid.uuid4())
    running = writer.create_run(victim_exp, workflow_plan(lc_id, status="RUNNING"))
    forged = workflow_plan(lc_id, children=2, status="FAILED",
                           params={"injected": "yes"})
    forged.tags[Tag.MLFLOW_PARENT_RUN_ID] = running  # try to attach under the victim
    forged.children[0].tags[Tag.MLFLOW_PARENT_RUN_ID] = running
    forged.artifacts = {"../../../../escape.txt": "x", "/tmp/abs-escape.txt": "y"}
    spool = Spool(tmp_path / "spool")
    spool.put(experiment_name, lc_id, running, forged)
    result = sync(mlflow_store, spool.directory)
    assert result.exit_code == 0, result.output
    victim = mlflow_client.get_run(running)
    assert victim.info.status == "RUNNING"
    assert "injected" not in victim.data.params
    victim_runs = mlflow_client.search_runs([victim_exp])
    assert [r.info.run_id for r in victim_runs] == [running]  # no children attached
    parents, nodes = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 1 and parents[0].info.run_id != running
    assert all(n.data.tags[Tag.MLFLOW_PARENT_RUN_ID] == parents[0].info.run_id for n in nodes)
    names = {a.path for a in mlflow_client.list_artifacts(parents[0].info.run_id)}
    assert names == {"escape.txt", "tmp"}
    assert not Path("/tmp/abs-escape.txt").exists()


def test_replay_refuses_a_group_writable_spool_dir(mlflow_store, experiment_name, tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.put(experiment_name, str(uuid.uuid4()), None, workflow_plan("x"))
    os.chmod(spool.directory, 0o777)
    result = sync(mlflow_store, spool.directory)
    assert result.exit_code == 2
    assert "group/world-writable" in result.output and "chmod 700" in result.output
    assert len(spool.pending()) == 1  # nothing claimed, nothing lost


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_replay_sets_aside_a_file_owned_by_another_user(
    mlflow_store, experiment_name, mlflow_client, tmp_path
):
    spool = Spool(tmp_path / "spool")
    path = spool.put(experiment_name, str(uuid.uuid4()), None, workflow_plan("x"))
    os.chown(path, 12345, 12345)
    result = sync(mlflow_store, spool.directory)
    assert "owned by uid 12345" in result.output
    assert mlflow_client.get_experiment_by_name(experiment_name) is None


# ---- item 7: size cap and disk full --------------------------------------------------------


def test_spool_cap_drops_newest_counted_and_warns(tmp_path, caplog):
    spool_dir = tmp_path / "spool"
    handler = make_handler("http://127.0.0.1:9", "capped", spool_dir=str(spool_dir),
                           spool_max_bytes=12_000)
    caplog.set_level(logging.WARNING, logger="configurable_agents.observability")
    model = repeating()
    for i in range(20):
        model.invoke(f"question {i}", config={"callbacks": [handler]})
    handler.flush(30)
    stats = handler.stats()
    handler.close(timeout=5)
    on_disk = sum(p.stat().st_size for p in spool_dir.glob("*.json"))
    assert 0 < on_disk <= 12_000
    assert stats.spooled >= 1 and stats.dropped >= 1
    assert stats.spooled + stats.dropped == 20
    assert any("full" in r.getMessage() for r in caplog.records)
    big = workflow_plan("y", artifacts={"big.txt": "x" * 5000})
    with pytest.raises(SpoolFullError):
        Spool(spool_dir, max_bytes=12_000).put("x", "y", None, big)


def test_disk_full_leaves_no_tmp_debris_and_stale_tmp_is_cleaned(tmp_path):
    """A real write error: RLIMIT_FSIZE makes the spool write fail with EFBIG."""
    spool_dir = tmp_path / "spool"
    script = textwrap.dedent(f"""
        import resource, signal, uuid
        from configurable_agents.observability.sinks.spool import Spool
        from tests.test_hardening_spool import workflow_plan
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        spool = Spool({str(spool_dir)!r})
        spool.put("e", "small", None, workflow_plan("small"))
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        plan = workflow_plan("big")
        plan.artifacts = {{"big.txt": "x" * 100_000}}
        for _ in range(3):
            try:
                spool.put("e", str(uuid.uuid4()), None, plan)
            except OSError as exc:
                print("failed", exc.errno)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=Path(__file__).parent.parent, check=True).stdout
    assert out.count("failed") == 3
    names = [p.name for p in spool_dir.iterdir()]
    assert len(names) == 1 and names[0].endswith(".json")
    # Debris of a process killed mid-write is removed on the next start.
    (spool_dir / ".000-x-1.999999999.tmp").write_text("{")
    Spool(spool_dir).recover()
    assert [p.name for p in spool_dir.iterdir()] == names
