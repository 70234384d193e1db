"""Reading rollup runs: the sampled-out workflows' counts, tokens and cost, added exactly once.

With ``sample_rate`` below 1 the write side folds most ordinary workflows into one
rollup run per (experiment, workflow, version, time bucket), tagged
``configurable_agents.kind = rollup``. A workflow is either written in full or folded,
never both, so a report's totals are full workflow runs plus rollups. This module turns
a rollup run into report rows: workflow-level rows weighted by ``count`` (one per
outcome), and node-level rows from its ``node/<id>/<measure>`` metrics.

A rollup can be written twice (a retried or replayed write): rows are keyed by its
``configurable_agents.rollup_id`` so each counts once. Rollups hold no user or team
tags: grouped by those, their share shows as ``(missing)``; the totals stay exact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from configurable_agents.names import (
    ROLLUP_NODE_MODEL_PARAM,
    Kind,
    Metric,
    Param,
    RollupMeasure,
    Status,
    Tag,
)
from configurable_agents.reports.access import StoredRun
from configurable_agents.reports.model import RunRow, outcome_of

_OUTCOME_STATUSES = (Status.FINISHED, Status.FAILED, Status.KILLED, Status.INTERRUPTED)


def unique_rollups(runs: Iterable[StoredRun]) -> list[StoredRun]:
    """Finished rollup runs, one per rollup id (a duplicate write counts once)."""
    seen: dict[str, StoredRun] = {}
    for run in runs:
        if run.status != Status.FINISHED:
            continue  # a write that did not complete; its replay is the one to count
        key = run.tags.get(Tag.ROLLUP_ID) or run.run_id
        seen.setdefault(key, run)
    return list(seen.values())


def rollup_rows(run: StoredRun) -> list[RunRow]:
    """Workflow-level rows of one rollup run: one per outcome present, weighted by count."""
    metrics = run.metrics
    total = int(metrics.get(Metric.ROLLUP_WORKFLOWS, 0))
    if total <= 0:
        return []
    counts = {status: int(metrics.get(f"{Metric.ROLLUP_STATUS_PREFIX}{status}", 0))
              for status in _OUTCOME_STATUSES}
    counts[Status.FINISHED] += total - sum(counts.values())  # older or unknown statuses
    mean = metrics.get(Metric.ROLLUP_DURATION_SECONDS_SUM, 0.0) / total
    rows: list[RunRow] = []
    first = True
    for status, count in counts.items():
        if count <= 0:
            continue
        shown, outcome = outcome_of(Status.FINISHED, status, None)
        rows.append(RunRow(
            run_id=run.run_id, kind=Kind.WORKFLOW, start_ms=run.start_ms or 0,
            status=shown, outcome=outcome,
            # The sums ride on the first row so they are added once.
            input_tokens=metrics.get(Metric.TOTAL_INPUT_TOKENS, 0.0) if first else 0.0,
            output_tokens=metrics.get(Metric.TOTAL_OUTPUT_TOKENS, 0.0) if first else 0.0,
            cost_usd=metrics.get(Metric.TOTAL_COST_USD, 0.0) if first else 0.0,
            priced=True, duration_s=mean,
            retries=metrics.get(Metric.RETRY_COUNT, 0.0) if first else 0.0,
            tags=run.tags, params=run.params, run_name=run.run_name, count=count,
        ))
        first = False
    rows[0].rollup_nodes = tuple(rollup_node_rows(run, rows[0]))
    return rows


def rollup_node_rows(run: StoredRun, workflow: RunRow) -> list[RunRow]:
    """Node-level rows of one rollup run (``node/<id>/<measure>`` metrics), one per node id."""
    per_node: dict[str, dict[str, float]] = defaultdict(dict)
    for key, value in run.metrics.items():
        if not key.startswith(Metric.ROLLUP_NODE_PREFIX):
            continue
        node_id, _, measure = key[len(Metric.ROLLUP_NODE_PREFIX):].rpartition("/")
        if node_id:
            per_node[node_id][measure] = value
    rows = []
    for node_id, sums in sorted(per_node.items()):
        runs = int(sums.get(RollupMeasure.RUNS, 0))
        if runs <= 0:
            continue
        params = {Param.NODE_ID: node_id}
        model = run.params.get(f"{ROLLUP_NODE_MODEL_PARAM}{node_id}")
        if model:
            params[Param.NODE_MODEL] = model
        rows.append(RunRow(
            run_id=f"{run.run_id}/{node_id}", kind=Kind.NODE, start_ms=run.start_ms or 0,
            status=Status.FINISHED, outcome="succeeded",
            input_tokens=sums.get(RollupMeasure.INPUT_TOKENS, 0.0),
            output_tokens=sums.get(RollupMeasure.OUTPUT_TOKENS, 0.0),
            cost_usd=sums.get(RollupMeasure.COST_USD, 0.0), priced=True,
            duration_s=sums.get(RollupMeasure.DURATION_MS_SUM, 0.0) / runs / 1000,
            retries=sums.get(RollupMeasure.RETRIES, 0.0), tags={}, params=params,
            run_name=f"node_{node_id}", parent_id=run.run_id, workflow=workflow, count=runs,
        ))
    return rows
