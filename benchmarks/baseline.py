"""The persistence floor: a minimal hand-written ``MlflowClient`` sequence per workflow.

What someone who knows MLflow would write by hand for the 2-node article writer:
3 ``create_run`` (parent + 2 nested, tags included), 3 ``log_batch`` (params and
metrics), 3 ``log_artifacts`` (two small files each), 3 ``set_terminated``. Same
entity counts and artifact sizes as the handler writes for that graph, no traces, no
pricing, no retries: the fastest correct thing, so the handler's throughput is quoted
as a ratio to it.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

PARENT_TAG = "mlflow.parentRunId"
NODE_IDS = ("research", "write")


def _write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")


def _complete(
    client: MlflowClient,
    run_id: str,
    params: dict[str, str],
    metrics: dict[str, float],
    files: dict[str, str],
    end_ms: int,
) -> None:
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, end_ms, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
        synchronous=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as tmp:
        _write_files(Path(tmp), files)
        client.log_artifacts(run_id, tmp)
    client.set_terminated(run_id, status="FINISHED", end_time=end_ms)


def write_workflow(client: MlflowClient, experiment_id: str) -> str:
    """Persist one article-writer workflow (parent + 2 nodes); returns the parent run id."""
    start_ms = int(time.time() * 1000)
    common = {
        "workflow_name": "article_writer",
        "workflow_version": "1.0.0",
        "user_id": "bench-user",
        "team": "benchmarks",
        "status": "FINISHED",
        "langchain_run_id": str(uuid.uuid4()),
    }
    parent = client.create_run(
        experiment_id,
        start_time=start_ms,
        run_name="article_writer",
        tags={**common, "configurable_agents.kind": "workflow"},
    ).info.run_id
    node_ids = []
    for node in NODE_IDS:
        node_ids.append(
            client.create_run(
                experiment_id,
                start_time=start_ms,
                run_name=f"node_{node}",
                tags={
                    **common,
                    "configurable_agents.kind": "node",
                    "node_id": node,
                    PARENT_TAG: parent,
                },
            ).info.run_id
        )
    end_ms = int(time.time() * 1000)
    _complete(
        client,
        parent,
        {
            "workflow_name": "article_writer",
            "workflow_version": "1.0.0",
            "global_model": "gemini-2.5-flash",
            "global_temperature": "0.7",
        },
        {f"metric_{i}": float(i) for i in range(12)},
        {
            "inputs.json": json.dumps({"topic": "AI Safety"}),
            "outputs.json": json.dumps({"topic": "AI Safety", "article": "x" * 250}),
        },
        end_ms,
    )
    for node, run_id in zip(NODE_IDS, node_ids, strict=True):
        _complete(
            client,
            run_id,
            {"node_id": node, "node_model": "gemini-2.5-flash", "tools": "[]"},
            {f"metric_{i}": float(i) for i in range(9)},
            {"prompt.txt": "p" * 180, "response.txt": "r" * 127},
            end_ms,
        )
    return parent
