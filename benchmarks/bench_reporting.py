"""Benchmark: ``report costs`` over 20,000 workflow runs x 3 node runs on a sqlite store.

Goal (issue #7): grouped by workflow and by node, the report must finish well under a
minute. Run with::

    .venv/bin/python benchmarks/bench_reporting.py            # 20,000 parents, fresh db
    .venv/bin/python benchmarks/bench_reporting.py --parents 2000 --db /tmp/r.db

Seeding. Writing 80,000 runs one by one through ``MlflowClient`` costs ~40 ms per run on
sqlite (create_run + log_batch + set_terminated), i.e. almost an hour, so the seed works in
two steps:

1. ``--template`` workflow runs (default 200) and their node runs are written through
   ``MlflowClient`` with exactly the handler's layout (``create_run`` with explicit
   ``start_time`` and tags, ``log_batch`` for params and metrics, ``set_terminated`` with the
   real ``end_time``, nested runs tagged ``mlflow.parentRunId``).
2. The template is replicated in bulk with ``INSERT ... SELECT`` on MLflow's own tables
   (``runs``, ``tags``, ``params``, ``metrics``, ``latest_metrics``): fresh run ids, the parent
   links remapped, start/end times shifted across 30 days. This touches MLflow's schema
   directly and is a benchmark seed only; the report itself reads through ``MlflowClient``.
   The seed is checked by counting the runs back through ``MlflowClient``.

``--client-only`` seeds everything through ``MlflowClient`` (slow; for cross-checking).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from configurable_agents.reports.reporting import cost_report

KIND = "configurable_agents.kind"
WORKFLOWS = {
    "article_writer": ("research", "write", "review"),
    "support_bot": ("classify", "retrieve", "answer"),
    "summarizer": ("chunk", "summarize", "merge"),
    "classifier": ("embed", "classify", "explain"),
}
MODELS = ("gemini-2.5-flash", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-pro")
TEAMS = ("data", "ml", "ops", "support")
DAY_MS = 86_400_000


def _seed_one(client: MlflowClient, experiment_id: str, rng: random.Random, start: int) -> None:
    """One workflow run and its 3 node runs, in the handler's layout."""
    workflow = rng.choice(sorted(WORKFLOWS))
    version = rng.choice(("1.0.0", "1.1.0"))
    failed = rng.random() < 0.05
    unpriced = rng.random() < 0.03
    attribution = {
        "user_id": f"user{rng.randrange(50)}",
        "team": rng.choice(TEAMS),
        "tenant_id": f"tenant{rng.randrange(5)}",
        "session_id": uuid.uuid4().hex[:12],
    }
    tags = {
        KIND: "workflow",
        "langchain_run_id": str(uuid.uuid4()),
        "workflow_name": workflow,
        "workflow_version": version,
        "status": "FAILED" if failed else "FINISHED",
        **attribution,
    }
    nodes = []
    cursor = start + rng.randrange(1, 20)
    for node_id in WORKFLOWS[workflow]:
        model = rng.choice(MODELS)
        duration_ms = rng.randrange(200, 4000)
        nodes.append((node_id, model, cursor, duration_ms, rng.randrange(200, 3000),
                      rng.randrange(50, 1500), rng.random() < 0.1))
        cursor += duration_ms + rng.randrange(1, 30)
    if unpriced:
        tags["pricing"] = "unknown"
        tags["unpriced_models"] = nodes[0][1]
    if failed:
        tags["error_type"] = "ValueError"
        tags["error_message"] = "boom"
    end = cursor + rng.randrange(1, 50)
    parent = client.create_run(experiment_id, start_time=start, tags=tags, run_name=workflow)
    parent_id = parent.info.run_id
    costs = [0.0 if unpriced and i == 0 else (n[4] * 0.3 + n[5] * 2.5) / 1e6
             for i, n in enumerate(nodes)]
    for i, (node_id, model, n_start, n_ms, tin, tout, retried) in enumerate(nodes):
        node_tags = {KIND: "node", "mlflow.parentRunId": parent_id,
                     "workflow_name": workflow, "workflow_version": version,
                     "langchain_run_id": str(uuid.uuid4()), **attribution}
        node = client.create_run(experiment_id, start_time=n_start, tags=node_tags,
                                 run_name=f"node_{node_id}")
        ok = not (failed and i == len(nodes) - 1)
        values = {"node_duration_ms": n_ms, "input_tokens": tin, "output_tokens": tout,
                  "retries": int(retried), "cost_usd": costs[i], "llm_calls": 1,
                  "cached_input_tokens": 0, "reasoning_tokens": 0, "status": int(ok)}
        client.log_batch(
            node.info.run_id,
            metrics=[Metric(k, float(v), n_start + n_ms, 0) for k, v in values.items()],
            params=[Param("node_id", node_id), Param("node_model", model), Param("tools", "[]")],
        )
        client.set_terminated(node.info.run_id, "FINISHED" if ok else "FAILED",
                              end_time=n_start + n_ms)
    totals = {
        "duration_seconds": (end - start) / 1000,
        "total_input_tokens": sum(n[4] for n in nodes),
        "total_output_tokens": sum(n[5] for n in nodes),
        "total_cost_usd": sum(costs),
        "node_count": len(nodes),
        "retry_count": sum(int(n[6]) for n in nodes),
        "status": 0 if failed else 1,
        "llm_calls": len(nodes),
        "total_cached_input_tokens": 0,
        "total_reasoning_tokens": 0,
    }
    client.log_batch(
        parent_id,
        metrics=[Metric(k, float(v), end, 0) for k, v in totals.items()],
        params=[Param("workflow_name", workflow), Param("workflow_version", version),
                Param("global_model", nodes[0][1]), Param("global_temperature", "0.7")],
        tags=[RunTag("mlflow.runName", workflow)],
    )
    client.set_terminated(parent_id, "FAILED" if failed else "FINISHED", end_time=end)


def seed_with_client(client: MlflowClient, experiment_id: str, parents: int,
                     span_ms: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    base = int(time.time() * 1000) - span_ms
    for i in range(parents):
        _seed_one(client, experiment_id, rng, base + (i * span_ms) // max(parents, 1))


def replicate(db_path: Path, experiment_id: str, copies: int, span_ms: int) -> None:
    """Copy every run of the experiment ``copies`` more times with fresh ids and shifted times."""
    con = sqlite3.connect(db_path)
    try:
        con.execute("PRAGMA synchronous=OFF")
        exp = int(experiment_id)
        originals = [r[0] for r in con.execute(
            "SELECT run_uuid FROM runs WHERE experiment_id = ?", (exp,))]
        con.execute("CREATE TEMP TABLE idmap (old TEXT PRIMARY KEY, new TEXT, shift INTEGER)")
        for copy in range(1, copies + 1):
            shift = -((copy * 7919) % 30) * DAY_MS - copy * 1000  # spread over 30 days
            con.execute("DELETE FROM idmap")
            con.executemany("INSERT INTO idmap VALUES (?, ?, ?)",
                            [(old, uuid.uuid4().hex, shift) for old in originals])
            con.execute(
                """INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name,
                   user_id, status, start_time, end_time, source_version, lifecycle_stage,
                   artifact_uri, experiment_id, deleted_time)
                   SELECT m.new, r.name, r.source_type, r.source_name, r.entry_point_name,
                   r.user_id, r.status, r.start_time + m.shift, r.end_time + m.shift,
                   r.source_version, r.lifecycle_stage, replace(r.artifact_uri, m.old, m.new),
                   r.experiment_id, r.deleted_time
                   FROM runs r JOIN idmap m ON r.run_uuid = m.old""")
            con.execute(
                """INSERT INTO tags (key, value, run_uuid)
                   SELECT t.key, COALESCE(p.new, t.value), m.new FROM tags t
                   JOIN idmap m ON t.run_uuid = m.old
                   LEFT JOIN idmap p ON t.key = 'mlflow.parentRunId' AND t.value = p.old""")
            con.execute(
                """INSERT INTO params (key, value, run_uuid)
                   SELECT p.key, p.value, m.new FROM params p JOIN idmap m ON p.run_uuid = m.old""")
            for table in ("metrics", "latest_metrics"):
                con.execute(
                    f"""INSERT INTO {table} (key, value, timestamp, step, is_nan, run_uuid)
                        SELECT x.key, x.value, x.timestamp + m.shift, x.step, x.is_nan, m.new
                        FROM {table} x JOIN idmap m ON x.run_uuid = m.old""")
        con.commit()
    finally:
        con.close()


def _count(client: MlflowClient, experiment_id: str, kind: str) -> int:
    total, token = 0, None
    while True:
        page = client.search_runs([experiment_id], f"tags.`{KIND}` = '{kind}'",
                                  max_results=50_000, page_token=token)
        total += len(page)
        token = page.token
        if not token:
            return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parents", type=int, default=20_000)
    parser.add_argument("--template", type=int, default=200)
    parser.add_argument("--db", type=Path, default=None, help="reuse / create this sqlite file")
    parser.add_argument("--client-only", action="store_true")
    parser.add_argument("--database-only", action="store_true",
                        help="skip the search_runs baseline (minutes on 20,000 parents)")
    args = parser.parse_args(argv)

    db = args.db or Path(tempfile.mkdtemp(prefix="bench_reporting_")) / "mlflow.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri)
    name = "configurable_agents"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    span = 30 * DAY_MS
    existing = _count(client, experiment_id, "workflow")
    if existing == 0:
        t0 = time.perf_counter()
        if args.client_only:
            seed_with_client(client, experiment_id, args.parents, span)
        else:
            template = min(args.template, args.parents)
            if args.parents % template:
                parser.error("--parents must be a multiple of --template")
            seed_with_client(client, experiment_id, template, DAY_MS)
            replicate(db, experiment_id, args.parents // template - 1, span)
        print(f"seeded {args.parents} workflow runs in {time.perf_counter() - t0:.1f} s ({db})")
    parents, nodes = _count(client, experiment_id, "workflow"), _count(client, experiment_id,
                                                                        "node")
    print(f"store: {parents} workflow runs, {nodes} node runs")

    print(f"{'report costs --group-by':<26}{'database':>10}{'search_runs':>13}{'ratio':>8}")
    for group_by in (("workflow",), ("node",), ("workflow", "day"), ("model",)):
        seconds, reports = {}, {}
        # Both readers in the same run, database first then search_runs: the ratio is what
        # the direct read buys on this machine today; the totals must agree exactly.
        for direct_db in (True, False):
            t0 = time.perf_counter()
            report = cost_report(group_by, tracking_uri=uri, experiments=[name],
                                 direct_db=direct_db)
            seconds[direct_db] = time.perf_counter() - t0
            reports[direct_db] = report
            if args.database_only:
                break
        fast = reports[True]
        if not args.database_only:
            slow = reports[False]
            assert (fast.scope.read_via, slow.scope.read_via) == ("database", "search_runs")
            assert fast.groups == slow.groups and fast.totals == slow.totals, group_by
        slow_s = f"{seconds[False]:10.2f} s" if False in seconds else f"{'-':>12}"
        ratio = f"{seconds[False] / seconds[True]:7.1f}x" if False in seconds else f"{'-':>8}"
        print(f"{','.join(group_by):<26}{seconds[True]:8.2f} s{slow_s} {ratio}"
              f"  ({fast.totals.runs} rows, {len(fast.groups)} groups)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
