"""Retention cleanup and stale-run closing against a real sqlite MLflow store.

Runs are seeded with ``MlflowClient.create_run(start_time=...)`` and the exact layout tags
(``configurable_agents.kind``, ``mlflow.parentRunId``), so the code sees what the handler
writes. Every assertion names the exact runs that must (not) be touched.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from configurable_agents.commands import cleanup_cmd
from configurable_agents.names import Tag
from configurable_agents.reports.retention import (
    DAY_MS,
    RetentionError,
    RunRef,
    cleanup_runs,
    close_stale_runs,
    pid_alive,
    plan_cleanup,
    stale_reason,
)

# The run layout's tag names (ADR-011), as configurable_agents.names spells them.
CLOSED_BY_TAG = Tag.CLOSED_BY
CLOSED_REASON_TAG = Tag.CLOSED_REASON
HEARTBEAT_TAG = Tag.HEARTBEAT_MS
HOST_TAG = Tag.HOST
KIND_TAG = Tag.KIND
PARENT_TAG = Tag.MLFLOW_PARENT_RUN_ID
PID_TAG = Tag.PID

NOW_MS = int(time.time() * 1000)
MIN_MS = 60_000
HOST = socket.gethostname()


# --------------------------------------------------------------------------- seeding


def new_experiment(client: MlflowClient, name: str, root: Path) -> str:
    """An experiment whose artifacts live under ``root`` (so purge can be checked on disk)."""
    safe = name.replace("/", "_")
    return client.create_experiment(name, artifact_location=(root / safe).as_uri())


def run(
    client: MlflowClient,
    experiment_id: str,
    start_ms: int,
    *,
    kind: str | None = "workflow",
    parent: str | None = None,
    status: str | None = "FINISHED",
    end_ms: int | None = None,
    tags: dict[str, str] | None = None,
    artifact: bool = False,
) -> str:
    """One run with the layout's tags; ``status=None`` leaves it RUNNING as created."""
    all_tags = dict(tags or {})
    if kind is not None:
        all_tags[KIND_TAG] = kind
    if parent is not None:
        all_tags[PARENT_TAG] = parent
    run_id = client.create_run(experiment_id, start_time=start_ms, tags=all_tags).info.run_id
    if artifact:
        client.log_text(run_id, "the prompt", "prompt.txt")
    if status is not None:
        client.set_terminated(run_id, status, end_time=end_ms or start_ms + 1000)
    return run_id


def tree(
    client: MlflowClient,
    experiment_id: str,
    start_ms: int,
    *,
    status: str | None = "FINISHED",
    grandchild: bool = False,
    artifact: bool = False,
) -> list[str]:
    """A workflow run, one node run (RUNNING: nested status plays no role in retention) and
    optionally a subgraph node's own nested run; ids parent first."""
    parent = run(client, experiment_id, start_ms, status=status, artifact=artifact)
    child = run(
        client, experiment_id, start_ms + 10, kind="node", parent=parent, status=None,
        artifact=artifact,
    )
    ids = [parent, child]
    if grandchild:
        ids.append(
            run(client, experiment_id, start_ms + 20, kind="node", parent=child, status=None)
        )
    return ids


def active_ids(client: MlflowClient, experiment_id: str) -> set[str]:
    runs = client.search_runs([experiment_id], "", ViewType.ACTIVE_ONLY, max_results=50_000)
    return {r.info.run_id for r in runs}


def deleted_ids(client: MlflowClient, experiment_id: str) -> set[str]:
    runs = client.search_runs([experiment_id], "", ViewType.DELETED_ONLY, max_results=50_000)
    return {r.info.run_id for r in runs}


def artifact_dir(client: MlflowClient, run_id: str) -> Path:
    return Path(url2pathname(urlsplit(client.get_run(run_id).info.artifact_uri).path))


@dataclass
class Seeded:
    uri: str
    main: str
    other: str
    main_id: str
    other_id: str
    expired: set[str] = field(default_factory=set)  # old FINISHED trees: must go
    expired_roots: set[str] = field(default_factory=set)
    fresh: set[str] = field(default_factory=set)  # newer than the cutoff
    old_running: set[str] = field(default_factory=set)  # old, RUNNING parents + nested
    old_running_roots: set[str] = field(default_factory=set)
    foreign: set[str] = field(default_factory=set)  # old runs without our kind tag
    other_exp: set[str] = field(default_factory=set)


OLD_TREES = 150
FRESH_TREES = 30
RUNNING_TREES = 10
FOREIGN_RUNS = 10


@pytest.fixture(scope="module")
def fast_store(mlflow_store: str) -> Iterator[str]:
    """A copy of the session's (already migrated) sqlite store on tmpfs, for bulk seeding.

    Every MLflow write is its own fsync'd transaction: on tmpfs a create_run costs ~16 ms
    instead of ~45 ms on disk, and a new database would cost ~1.5 s of migrations.
    """
    source = Path(mlflow_store.removeprefix("sqlite:///"))
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="ca-retention-", dir=shm if shm.is_dir() else None))
    shutil.copyfile(source, root / "mlflow.db")
    yield f"sqlite:///{root / 'mlflow.db'}"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def seeded(fast_store: str, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """200 workflow runs at controlled start times (+ nested), around a 30-day cutoff."""
    client = MlflowClient(fast_store)
    root = tmp_path_factory.mktemp("retention-artifacts")
    tag = uuid.uuid4().hex[:8]
    s = Seeded(
        uri=fast_store,
        main=f"retention-main-{tag}",
        other=f"retention-other-{tag}",
        main_id="",
        other_id="",
    )
    s.main_id = new_experiment(client, s.main, root)
    s.other_id = new_experiment(client, s.other, root)
    old = NOW_MS - 40 * DAY_MS
    for i in range(OLD_TREES):
        ids = tree(client, s.main_id, old + i * MIN_MS, grandchild=i % 20 == 0)
        s.expired.update(ids)
        s.expired_roots.add(ids[0])
    # A run someone else nested under one of our old workflow runs: not ours, never touched.
    s.foreign.add(run(client, s.main_id, old + 30, kind=None, parent=min(s.expired_roots)))
    # Just inside the window (29 days) and far inside it.
    for i in range(FRESH_TREES):
        start = NOW_MS - (29 * DAY_MS if i % 2 else 2 * DAY_MS) + i * MIN_MS
        s.fresh.update(tree(client, s.main_id, start))
    for i in range(RUNNING_TREES):
        ids = tree(client, s.main_id, old + i * MIN_MS, status=None)
        s.old_running.update(ids)
        s.old_running_roots.add(ids[0])
    for i in range(FOREIGN_RUNS):
        s.foreign.add(run(client, s.main_id, old + i * MIN_MS, kind=None))
    for i in range(10):
        s.other_exp.update(tree(client, s.other_id, old + i * MIN_MS))
    return s


# --------------------------------------------------------------------------- cleanup


def test_dry_run_then_cleanup_deletes_exactly_the_expired_trees(seeded: Seeded) -> None:
    client = MlflowClient(seeded.uri)
    everything = (
        seeded.expired | seeded.fresh | seeded.old_running | seeded.foreign
    )
    assert active_ids(client, seeded.main_id) == everything

    events: list[tuple[str, int, int | None]] = []
    dry = cleanup_runs(
        seeded.uri, [seeded.main], 30, dry_run=True, page_size=64, now_ms=NOW_MS,
        progress=lambda *e: events.append(e),
    )
    assert active_ids(client, seeded.main_id) == everything  # nothing changed
    assert dry.dry_run and dry.deleted == 0 and dry.purged == 0
    (exp,) = dry.experiments
    assert exp.name == seeded.main
    assert set(exp.matched_run_ids) == seeded.expired_roots
    assert (exp.matched, exp.runs_matched) == (OLD_TREES, len(seeded.expired))
    assert exp.skipped_running == RUNNING_TREES

    summary = cleanup_runs(
        seeded.uri, [seeded.main], 30, page_size=64, now_ms=NOW_MS,
        progress=lambda *e: events.append(e),
    )
    assert active_ids(client, seeded.main_id) == seeded.fresh | seeded.old_running | seeded.foreign
    assert deleted_ids(client, seeded.main_id) == seeded.expired
    assert active_ids(client, seeded.other_id) == seeded.other_exp
    assert (summary.matched, summary.runs_matched) == (OLD_TREES, len(seeded.expired))
    assert summary.deleted == len(seeded.expired) and summary.purged == 0
    assert summary.experiments[0].skipped_running == RUNNING_TREES
    # Progress reports every run, ending at the total.
    assert events[-1] == ("deleting runs", len(seeded.expired), len(seeded.expired))

    # A second pass finds nothing left to do.
    again = cleanup_runs(seeded.uri, [seeded.main], 30, now_ms=NOW_MS)
    assert (again.matched, again.deleted) == (0, 0)

    # --include-running takes the old RUNNING trees too; fresh and foreign runs stay.
    running = cleanup_runs(seeded.uri, [seeded.main], 30, include_running=True, now_ms=NOW_MS)
    assert set(running.experiments[0].matched_run_ids) == seeded.old_running_roots
    assert running.deleted == len(seeded.old_running)
    assert active_ids(client, seeded.main_id) == seeded.fresh | seeded.foreign


def test_plan_orders_descendants_before_their_parent(
    mlflow_client: MlflowClient, mlflow_store: str, experiment_name: str, tmp_path: Path
) -> None:
    exp = new_experiment(mlflow_client, experiment_name, tmp_path)
    cutoff = NOW_MS - DAY_MS
    parent, child, grandchild = tree(mlflow_client, exp, cutoff - 1000, grandchild=True)
    mlflow_client.set_terminated(parent, "FINISHED", end_time=cutoff + 10 * MIN_MS)
    late_child = run(  # a node that started after the cutoff still belongs to its tree
        mlflow_client, exp, cutoff + 5 * MIN_MS, kind="node", parent=parent, status=None
    )
    plan = plan_cleanup(mlflow_store, [experiment_name], 1, now_ms=NOW_MS)
    (t,) = plan.experiments[0].trees
    order = [r.run_id for r in t.runs]
    assert set(order) == {parent, child, grandchild, late_child}
    assert order[-1] == parent
    assert order.index(grandchild) < order.index(child)


def test_purge_removes_rows_and_artifacts(
    mlflow_client: MlflowClient, mlflow_store: str, experiment_name: str, tmp_path: Path
) -> None:
    exp = new_experiment(mlflow_client, experiment_name, tmp_path)
    old = [tree(mlflow_client, exp, NOW_MS - 9 * DAY_MS + i, artifact=True) for i in range(3)]
    keep = tree(mlflow_client, exp, NOW_MS - DAY_MS, artifact=True)
    old_ids = [rid for ids in old for rid in ids]
    dirs = [artifact_dir(mlflow_client, rid) for rid in old_ids]
    assert all((d / "prompt.txt").is_file() for d in dirs)

    dry = cleanup_runs(mlflow_store, [experiment_name], 7, dry_run=True, purge=True)
    assert (dry.runs_matched, dry.deleted, dry.purged) == (6, 0, 0)
    assert all((d / "prompt.txt").is_file() for d in dirs)

    summary = cleanup_runs(mlflow_store, [experiment_name], 7, purge=True)
    assert (summary.matched, summary.deleted, summary.purged) == (3, 6, 6)
    for rid, d in zip(old_ids, dirs, strict=True):
        with pytest.raises(MlflowException, match=r"not found|does not exist"):
            mlflow_client.get_run(rid)
        assert not d.exists()
        assert not d.parent.exists()  # the emptied <run_id>/ directory too
    assert deleted_ids(mlflow_client, exp) == set()  # nothing left for `mlflow gc`
    assert active_ids(mlflow_client, exp) == set(keep)
    assert all((artifact_dir(mlflow_client, rid) / "prompt.txt").is_file() for rid in keep)


def test_errors_are_one_line_and_masked(mlflow_store: str, tmp_path: Path) -> None:
    with pytest.raises(RetentionError, match=r"^unknown experiment 'nope-[0-9a-f]+' at sqlite"):
        cleanup_runs(mlflow_store, [f"nope-{uuid.uuid4().hex[:6]}"], 1)
    with pytest.raises(RetentionError, match="no MLflow database at"):
        cleanup_runs(f"sqlite:///{tmp_path / 'missing.db'}", ["x"], 1)
    assert not (tmp_path / "missing.db").exists()  # not silently created
    with pytest.raises(RetentionError, match="older_than_days must be >= 0"):
        cleanup_runs(mlflow_store, ["x"], -1)
    port = _free_port()
    uri = f"http://admin:hunter2@127.0.0.1:{port}"
    with pytest.raises(RetentionError) as err:
        cleanup_runs(uri, ["x"], 1)
    message = str(err.value)
    assert message == f"cannot reach tracking server http://admin:***@127.0.0.1:{port} " \
        "(connection refused)"
    with pytest.raises(RetentionError, match=r"--purge needs direct access .*admin:\*\*\*@"):
        cleanup_runs(uri, ["x"], 1, purge=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- stale runs


@pytest.fixture(scope="module")
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert pid_alive(proc.pid) is False
    return proc.pid


def test_pid_alive() -> None:
    assert pid_alive(os.getpid()) is True
    assert pid_alive(0) is None and pid_alive(-5) is None


def test_stale_reason_rules(dead_pid: int) -> None:
    hour = 60 * MIN_MS

    def ref(tags: dict[str, str], start: int = NOW_MS - 5 * MIN_MS) -> RunRef:
        return RunRef("r", "wf", start, None, "RUNNING", tags)

    def reason(r: RunRef, after_ms: int = hour) -> str | None:
        return stale_reason(r, now_ms=NOW_MS, stale_after_ms=after_ms, hostname=HOST)

    fresh = str(NOW_MS - MIN_MS)
    old = str(NOW_MS - 2 * hour)
    # Same host: the pid decides, whatever the heartbeat says.
    assert reason(ref({HOST_TAG: HOST, PID_TAG: str(dead_pid), HEARTBEAT_TAG: fresh})) == (
        f"pid {dead_pid} is not running on {HOST}"
    )
    assert reason(ref({HOST_TAG: HOST, PID_TAG: str(os.getpid()), HEARTBEAT_TAG: old})) is None
    # Another host: only the heartbeat counts (a dead pid number there means nothing here).
    other = {HOST_TAG: "elsewhere", PID_TAG: str(dead_pid)}
    assert reason(ref({**other, HEARTBEAT_TAG: fresh})) is None
    assert reason(ref({**other, HEARTBEAT_TAG: old})) == (
        f"no heartbeat on elsewhere for 120 min (last heartbeat "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(int(old) / 1000))})"
    )
    assert reason(ref({**other, HEARTBEAT_TAG: old}), after_ms=3 * hour) is None
    # No tags at all: the start time stands in for the heartbeat.
    assert reason(ref({})) is None
    assert reason(ref({}, start=NOW_MS - 2 * hour)).startswith("no heartbeat for 120 min")
    # A garbled pid falls back to the heartbeat rule.
    assert reason(ref({HOST_TAG: HOST, PID_TAG: "x", HEARTBEAT_TAG: fresh})) is None


def test_close_stale_runs(
    mlflow_client: MlflowClient,
    mlflow_store: str,
    experiment_name: str,
    tmp_path: Path,
    dead_pid: int,
) -> None:
    c = mlflow_client
    exp = new_experiment(c, experiment_name, tmp_path)
    hour = 60 * MIN_MS
    start = NOW_MS - 3 * hour

    def ours(pid: int, host: str = HOST, beat: int | None = None) -> dict[str, str]:
        return {HOST_TAG: host, PID_TAG: str(pid), HEARTBEAT_TAG: str(beat or start)}

    # Dead pid on this host (fresh heartbeat does not save it), with nested runs.
    dead = run(c, exp, start, status=None, tags=ours(dead_pid, beat=NOW_MS - MIN_MS))
    dead_done = run(c, exp, start + 10, kind="node", parent=dead, end_ms=start + 50_000)
    dead_node = run(c, exp, start + 60_000, kind="node", parent=dead, status=None)
    dead_sub = run(c, exp, start + 70_000, kind="node", parent=dead_node, status=None)
    # Live pid (this test process) with a 3-hour-old heartbeat: a long run, not a dead one.
    alive = run(c, exp, start, status=None, tags=ours(os.getpid()))
    # Another host: heartbeat 3 h old -> stale; 10 min old -> not.
    far_old = run(c, exp, start, status=None, tags=ours(dead_pid, "elsewhere"))
    far_new = run(
        c, exp, start, status=None, tags=ours(dead_pid, "elsewhere", NOW_MS - 10 * MIN_MS)
    )
    # No heartbeat tags (written before heartbeats existed): start time decides.
    untagged_old = run(c, exp, start, status=None)
    untagged_new = run(c, exp, NOW_MS - 5 * MIN_MS, status=None)
    # Never touched: not ours, and not RUNNING.
    foreign = run(c, exp, start, kind=None, status=None, tags=ours(dead_pid))
    finished = run(c, exp, start, tags=ours(dead_pid))

    dry = close_stale_runs(mlflow_store, [experiment_name], dry_run=True, now_ms=NOW_MS)
    (e,) = dry.experiments
    assert e.running_checked == 6
    assert {s.run_id for s in e.stale} == {dead, far_old, untagged_old}
    assert e.closed == 0
    assert all(c.get_run(r).info.status == "RUNNING" for r in (dead, dead_node, far_old))
    by_id = {s.run_id: s for s in e.stale}
    assert set(by_id[dead].nested_running) == {dead_node, dead_sub}
    assert by_id[dead].reason == f"pid {dead_pid} is not running on {HOST}"

    result = close_stale_runs(mlflow_store, [experiment_name], now_ms=NOW_MS)
    assert result.stale_count == 3 and result.closed == 5  # 3 parents + 2 nested RUNNING
    for rid in (dead, dead_node, dead_sub, far_old, untagged_old):
        info = c.get_run(rid)
        assert info.info.status == "KILLED"
        assert info.data.tags[CLOSED_BY_TAG] == "cleanup --stale"
        assert info.data.tags[CLOSED_REASON_TAG]
    # The end time is the last sign of life (the heartbeat here), not "now".
    assert c.get_run(dead).info.end_time == NOW_MS - MIN_MS
    assert c.get_run(untagged_old).info.end_time == start
    assert c.get_run(dead_done).info.status == "FINISHED"
    assert c.get_run(dead_done).info.end_time == start + 50_000
    for rid in (alive, far_new, untagged_new, foreign):
        assert c.get_run(rid).info.status == "RUNNING"
        assert CLOSED_BY_TAG not in c.get_run(rid).data.tags
    assert c.get_run(finished).info.status == "FINISHED"

    # Closed runs are no longer RUNNING: the next retention pass may delete them.
    plan = plan_cleanup(mlflow_store, [experiment_name], 0.1, now_ms=NOW_MS)
    roots = {t.root.run_id for t in plan.experiments[0].trees}
    assert roots == {dead, far_old, untagged_old, finished}


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def small(mlflow_client: MlflowClient, experiment_name: str, tmp_path: Path) -> dict[str, list]:
    exp = new_experiment(mlflow_client, experiment_name, tmp_path)
    return {
        "exp": [exp],
        "old": [tree(mlflow_client, exp, NOW_MS - 20 * DAY_MS + i) for i in range(2)],
        "new": [tree(mlflow_client, exp, NOW_MS - DAY_MS)],
    }


def invoke(args: list[str], input: str | None = None, env: dict[str, str] | None = None):
    return CliRunner().invoke(cleanup_cmd.app, args, input=input, env=env)


def test_cli_confirms_then_deletes(
    small: dict[str, list], mlflow_client: MlflowClient, mlflow_store: str, experiment_name: str
) -> None:
    exp = small["exp"][0]
    old = {r for ids in small["old"] for r in ids}
    base = ["--older-than-days", "10", "-e", experiment_name, "--tracking-uri", mlflow_store]

    dry = invoke([*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.count("would delete ") == 2
    assert f"  {experiment_name}: 2 workflow runs matched (4 with nested), 4 would delete" in (
        dry.output
    )

    declined = invoke(base, input="n\n")
    assert declined.exit_code == 1
    assert "Delete 4 runs (2 workflow runs and their nested runs)" in declined.output
    assert "aborted; nothing deleted" in declined.output
    assert deleted_ids(mlflow_client, exp) == set()

    done = invoke(base, input="y\n")
    assert done.exit_code == 0, done.output
    assert f"  {experiment_name}: 2 workflow runs matched (4 with nested), 4 deleted" in (
        done.output
    )
    assert "Total: 2 workflow runs matched, 4 runs, 4 deleted." in done.output
    assert deleted_ids(mlflow_client, exp) == old
    assert active_ids(mlflow_client, exp) == set(small["new"][0])


def test_cli_purge_with_yes(
    small: dict[str, list], mlflow_client: MlflowClient, mlflow_store: str, experiment_name: str
) -> None:
    result = invoke(
        ["--older-than-days", "10", "-e", experiment_name, "--tracking-uri", mlflow_store,
         "--purge", "--yes"]
    )
    assert result.exit_code == 0, result.output
    assert "4 deleted, 4 purged" in result.output
    assert deleted_ids(mlflow_client, small["exp"][0]) == set()
    assert active_ids(mlflow_client, small["exp"][0]) == set(small["new"][0])


def test_cli_takes_retention_days_and_experiment_from_config(
    small: dict[str, list], mlflow_client: MlflowClient, mlflow_store: str,
    experiment_name: str, tmp_path: Path,
) -> None:
    config = tmp_path / "workflow.yaml"
    config.write_text(
        "config:\n  observability:\n    mlflow:\n"
        f"      tracking_uri: {mlflow_store}\n"
        f"      experiment_name: {experiment_name}\n"
        "      retention_days: 30\n",
        encoding="utf-8",
    )
    kept = invoke(["--config", str(config), "--yes"])  # 30 days: the 20-day-old runs stay
    assert kept.exit_code == 0, kept.output
    assert "older than 30 days" in kept.output and "0 deleted" in kept.output
    # The environment overrides the file, as everywhere else.
    env = {"CONFIGURABLE_AGENTS_MLFLOW_RETENTION_DAYS": "15"}
    gone = invoke(["--config", str(config), "--yes"], env=env)
    assert gone.exit_code == 0, gone.output
    assert "older than 15 days" in gone.output and "4 deleted" in gone.output
    assert active_ids(mlflow_client, small["exp"][0]) == set(small["new"][0])


def test_cli_env_only_settings(
    small: dict[str, list], mlflow_client: MlflowClient, mlflow_store: str, experiment_name: str
) -> None:
    env = {
        "CONFIGURABLE_AGENTS_MLFLOW_RETENTION_DAYS": "10",
        "CONFIGURABLE_AGENTS_MLFLOW_TRACKING_URI": mlflow_store,
        "CONFIGURABLE_AGENTS_MLFLOW_EXPERIMENT_NAME": experiment_name,
    }
    result = invoke(["--yes"], env=env)
    assert result.exit_code == 0, result.output
    assert "4 deleted" in result.output


def test_cli_argument_errors(mlflow_store: str, experiment_name: str) -> None:
    missing = invoke(["--tracking-uri", mlflow_store])
    assert missing.exit_code == 2
    assert "no retention period: pass --older-than-days N, or set retention_days" in (
        missing.output
    )
    negative = invoke(["--older-than-days", "-3", "--tracking-uri", mlflow_store])
    assert negative.exit_code == 2
    orphan = invoke(["--older-than-days", "3", "--stale-after-minutes", "5"])
    assert orphan.exit_code == 2 and "--stale-after-minutes needs --stale" in orphan.output
    unknown = invoke(["--older-than-days", "3", "--tracking-uri", mlflow_store, "-e", "zz-none"])
    assert unknown.exit_code == 1
    assert unknown.output.startswith("Error: unknown experiment 'zz-none' at sqlite")
    port = _free_port()
    down = invoke(
        ["--older-than-days", "3", "--tracking-uri", f"http://bob:s3cret@127.0.0.1:{port}"]
    )
    assert down.exit_code == 1
    assert down.output == (
        f"Error: cannot reach tracking server http://bob:***@127.0.0.1:{port} "
        "(connection refused)\n"
    )
    bad = invoke(["--older-than-days", "3", "--tracking-uri", "s3://bucket/x"])
    assert bad.exit_code == 2 and "unsupported tracking_uri scheme 's3'" in bad.output


def test_cli_stale(
    mlflow_client: MlflowClient, mlflow_store: str, experiment_name: str, tmp_path: Path,
    dead_pid: int,
) -> None:
    exp = new_experiment(mlflow_client, experiment_name, tmp_path)
    tags = {HOST_TAG: HOST, PID_TAG: str(dead_pid), HEARTBEAT_TAG: str(NOW_MS)}
    dead = run(mlflow_client, exp, NOW_MS - MIN_MS, status=None, tags=tags)
    base = ["--stale", "-e", experiment_name, "--tracking-uri", mlflow_store]

    dry = invoke([*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"{dead}" in dry.output and "would mark KILLED" in dry.output
    assert mlflow_client.get_run(dead).info.status == "RUNNING"

    # --stale alone closes runs and deletes nothing (no retention period needed).
    done = invoke([*base, "--stale-after-minutes", "5"])
    assert done.exit_code == 0, done.output
    assert "Total: 1 stale workflow runs, 1 runs closed." in done.output
    assert mlflow_client.get_run(dead).info.status == "KILLED"

    # --stale with --older-than-days closes, then deletes: the just-closed run is old enough.
    both = invoke([*base, "--older-than-days", "0", "--yes"])
    assert both.exit_code == 0, both.output
    assert deleted_ids(mlflow_client, exp) == {dead}


# --------------------------------------------------------------------------- traces


def test_cleanup_deletes_exactly_the_deleted_workflows_traces(
    mlflow_client: MlflowClient, mlflow_store: str, experiment_name: str
) -> None:
    """Traces hold the same prompts as the runs: retention must not leave them behind."""
    from tests.fakes import repeating
    from tests.test_handler_shapes import article_writer, make_handler
    from tests.test_traces import traces_of

    def invoke_twice() -> None:
        handler = make_handler(mlflow_store, experiment_name)
        app = article_writer(repeating("text", 100, 10))
        for n in range(2):
            app.invoke({"topic": f"t{n}"}, config={"callbacks": [handler]})
        assert handler.flush(60)
        handler.close()

    def workflow_traces(run_ids: set[str]) -> set[str]:
        return {mlflow_client.get_run(r).data.tags["configurable_agents.trace_id"]
                for r in run_ids}

    invoke_twice()
    time.sleep(0.01)
    between = int(time.time() * 1000)
    invoke_twice()
    exp = mlflow_client.get_experiment_by_name(experiment_name).experiment_id
    workflows = {r.info.run_id: r.info.start_time for r in mlflow_client.search_runs(
        [exp], f"tags.`{KIND_TAG}` = 'workflow'")}
    older = {r for r, start in workflows.items() if start < between}
    newer = set(workflows) - older
    assert len(older) == len(newer) == 2
    assert {t.info.trace_id for t in traces_of(mlflow_client, experiment_name)} == (
        workflow_traces(older) | workflow_traces(newer))

    dry = cleanup_runs(mlflow_store, [experiment_name], 0, now_ms=between, dry_run=True)
    assert (dry.matched, dry.traces_matched, dry.traces_deleted) == (2, 2, 0)
    kept = cleanup_runs(mlflow_store, [experiment_name], 0, now_ms=between,
                        delete_traces=False)
    assert (kept.deleted, kept.traces_matched, kept.traces_deleted) == (6, 2, 0)
    assert len(traces_of(mlflow_client, experiment_name)) == 4

    base = ["--older-than-days", "0", "-e", experiment_name, "--tracking-uri", mlflow_store]
    dry_cli = invoke([*base, "--dry-run"])
    assert "2 traces would be deleted" in dry_cli.output, dry_cli.output
    result = invoke([*base, "--keep-traces"], input="n\n")
    assert "Delete 6 runs (2 workflow runs and their nested runs) started" in result.output
    result = invoke(base, input="n\n")
    assert "and permanently delete their 2 traces," in result.output
    result = invoke([*base, "--yes"])
    assert result.exit_code == 0, result.output
    assert "Total: 2 workflow runs matched, 6 runs, 6 deleted, 2 traces deleted." in (
        result.output)
    remaining = {t.info.trace_id for t in traces_of(mlflow_client, experiment_name)}
    assert remaining == workflow_traces(older)  # kept by delete_traces=False above
