"""Rollup runs: sampled-out workflows folded into one MLflow run per bucket, so totals stay exact.

With ``sample_rate`` below 1 most ordinary workflows are not written as runs or
traces; their counts, tokens and cost still are, summed per (experiment, workflow,
version, time bucket) into a *rollup run* tagged ``configurable_agents.kind =
rollup``. The report read side adds rollups to full runs (never both for the same
workflow: a workflow is either kept or folded), and the MLflow run list filters them
out with ``tags.configurable_agents.kind != 'rollup'``.

Buckets are keyed by the workflow's start time and written once the bucket has been
closed for ``GRACE_S`` (and at flush/close); each written rollup carries a unique
``configurable_agents.rollup_id`` so a retried or replayed write is never counted twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from configurable_agents.names import (
    ROLLUP_NODE_MODEL_PARAM,
    ROLLUP_RUN_PREFIX,
    Kind,
    Metric,
    Param,
    RollupMeasure,
    Status,
    Tag,
)
from configurable_agents.observability.sinks.mlflow.keys import mlflow_key
from configurable_agents.observability.sinks.mlflow.plan import RunPlan

if TYPE_CHECKING:
    from configurable_agents.observability.facts.model import WorkflowFacts
    from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter

GRACE_S = 5.0
# Parent metrics that add up across workflows (a rollup shows their sums).
SUMMED_METRICS = (
    Metric.TOTAL_INPUT_TOKENS, Metric.TOTAL_OUTPUT_TOKENS, Metric.TOTAL_COST_USD,
    Metric.RETRY_COUNT, Metric.NODE_COUNT, Metric.LLM_CALLS, Metric.TOTAL_TOKENS,
    Metric.TOTAL_CACHED_INPUT_TOKENS, Metric.TOTAL_CACHE_WRITE_TOKENS,
    Metric.TOTAL_REASONING_TOKENS,
)
_NODE_AMOUNTS = (
    (Metric.INPUT_TOKENS, RollupMeasure.INPUT_TOKENS),
    (Metric.OUTPUT_TOKENS, RollupMeasure.OUTPUT_TOKENS),
    (Metric.COST_USD, RollupMeasure.COST_USD),
)

BucketKey = tuple[str, str, str, int]  # experiment, workflow, version, bucket start (ms)


@dataclass(slots=True)
class _NodeSums:
    amounts: Counter[str] = field(default_factory=Counter)
    models: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Bucket:
    workflows: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    duration_s: float = 0.0
    sums: Counter[str] = field(default_factory=Counter)
    nodes: dict[str, _NodeSums] = field(default_factory=dict)
    models: dict[str, Counter[str]] = field(default_factory=dict)
    last_end_ms: int = 0


@dataclass(slots=True)
class Rollup:
    """One rollup ready to write: where, and the run plan (tags carry its unique id)."""

    experiment: str
    plan: RunPlan

    @property
    def rollup_id(self) -> str:
        return self.plan.tags[Tag.ROLLUP_ID]


class RollupAccumulator:
    """Thread-safe sums per bucket; :meth:`due` hands out the buckets ready to write."""

    def __init__(self, bucket_s: int = 60, grace_s: float = GRACE_S) -> None:
        self.bucket_ms = bucket_s * 1000
        self.grace_ms = int(grace_s * 1000)
        self._buckets: dict[BucketKey, _Bucket] = {}
        self._lock = threading.Lock()
        self.folded = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    def add(self, facts: WorkflowFacts, experiment: str, plan: RunPlan) -> None:
        """Fold one sampled-out workflow (its run plan) into its bucket (no I/O)."""
        start = plan.start_ms - plan.start_ms % self.bucket_ms
        key = (experiment, facts.name, facts.version or "", start)
        nodes = _node_sums(plan)
        models = _model_sums(facts)
        with self._lock:
            bucket = self._buckets.setdefault(key, _Bucket())
            bucket.workflows += 1
            bucket.statuses[facts.status] += 1
            bucket.duration_s += float(plan.metrics.get(Metric.DURATION_SECONDS, 0.0))
            bucket.last_end_ms = max(bucket.last_end_ms, plan.end_ms)
            for name in SUMMED_METRICS:
                if name in plan.metrics:
                    bucket.sums[name] += float(plan.metrics[name])
            for node_id, sums in nodes.items():
                into = bucket.nodes.setdefault(node_id, _NodeSums())
                into.amounts.update(sums.amounts)
                into.models |= sums.models
            for model, amounts in models.items():
                bucket.models.setdefault(model, Counter()).update(amounts)
            self.folded += 1

    def due(self, *, everything: bool = False, now_ms: int | None = None) -> list[Rollup]:
        """Take the buckets closed for the grace period (all of them with ``everything``)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            keys = [k for k in self._buckets
                    if everything or k[3] + self.bucket_ms + self.grace_ms <= now_ms]
            taken = [(k, self._buckets.pop(k)) for k in keys]
        return [Rollup(k[0], self._plan(k, b)) for k, b in taken]

    def _plan(self, key: BucketKey, bucket: _Bucket) -> RunPlan:
        _experiment, workflow, version, start = key
        stamp = datetime.fromtimestamp(start / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")
        metrics: dict[str, float] = {
            Metric.ROLLUP_WORKFLOWS: bucket.workflows,
            Metric.ROLLUP_DURATION_SECONDS_SUM: bucket.duration_s,
            **{name: value for name, value in bucket.sums.items()},
        }
        for status, count in bucket.statuses.items():
            metrics[mlflow_key(f"{Metric.ROLLUP_STATUS_PREFIX}{status}")] = count
        params = {Param.WORKFLOW_NAME: workflow}
        if version:
            params[Param.WORKFLOW_VERSION] = version
        for node_id, sums in bucket.nodes.items():
            safe = _segment(node_id)
            for measure, value in sums.amounts.items():
                metrics[mlflow_key(f"{Metric.ROLLUP_NODE_PREFIX}{safe}/{measure}")] = value
            if len(sums.models) == 1:
                params[mlflow_key(f"{ROLLUP_NODE_MODEL_PARAM}{safe}")] = next(iter(sums.models))
        for model, amounts in bucket.models.items():
            safe = _segment(model)
            for measure, value in amounts.items():
                metrics[mlflow_key(f"{Metric.ROLLUP_MODEL_PREFIX}{safe}/{measure}")] = value
        tags = {
            Tag.KIND: Kind.ROLLUP,
            Tag.ROLLUP_ID: uuid.uuid4().hex,
            Tag.ROLLUP_BUCKET_S: str(self.bucket_ms // 1000),
            Tag.WORKFLOW_NAME: workflow,
            Tag.STATUS: Status.FINISHED,
        }
        if version:
            tags[Tag.WORKFLOW_VERSION] = version
        end = max(start + self.bucket_ms, bucket.last_end_ms)
        return RunPlan(
            run_name=mlflow_key(f"{ROLLUP_RUN_PREFIX}{workflow}_{stamp}"),
            start_ms=start, end_ms=end, status=Status.FINISHED,
            params=params, metrics=metrics, tags=tags,
        )


def write_rollup(writer: MlflowWriter, experiment_id: str, plan: RunPlan, *,
                 retry: bool = False) -> str:
    """Create and complete the rollup run; on a retry, complete the one already created."""
    run_id = _existing(writer, experiment_id, plan.tags[Tag.ROLLUP_ID]) if retry else None
    if run_id is None:
        run_id = writer.create_run(experiment_id, plan)
    writer.complete_run(run_id, plan)
    return run_id


def _existing(writer: MlflowWriter, experiment_id: str, rollup_id: str) -> str | None:
    runs = writer.client.search_runs(
        [experiment_id], filter_string=f"tags.`{Tag.ROLLUP_ID}` = '{rollup_id}'", max_results=1)
    return runs[0].info.run_id if runs else None


def _segment(name: str) -> str:
    """A node id or model name as one metric-key segment ('/' separates segments)."""
    return name.replace("/", "_") or "_"


def _node_sums(plan: RunPlan) -> dict[str, _NodeSums]:
    """Per node id: runs, retries, duration and *exclusive* tokens and cost.

    A subgraph node's metrics include its children's; subtracting them counts every
    model call once, as the report read side does for full runs.
    """
    out: dict[str, _NodeSums] = {}
    for node in plan.walk():
        if node is plan:
            continue
        node_id = node.params.get(Param.NODE_ID) or node.run_name
        sums = out.setdefault(node_id, _NodeSums())
        sums.amounts[RollupMeasure.RUNS] += 1
        sums.amounts[RollupMeasure.RETRIES] += float(node.metrics.get(Metric.RETRIES, 0))
        sums.amounts[RollupMeasure.DURATION_MS_SUM] += float(
            node.metrics.get(Metric.NODE_DURATION_MS, 0.0))
        for metric, measure in _NODE_AMOUNTS:
            own = float(node.metrics.get(metric, 0.0))
            own -= sum(float(c.metrics.get(metric, 0.0)) for c in node.children)
            sums.amounts[measure] += max(0.0, own)
        model = node.params.get(Param.NODE_MODEL)
        if model:
            sums.models.add(model)
    return out


def _model_sums(facts: WorkflowFacts) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for _node, call in facts.model_calls():
        amounts = out.setdefault(call.model or "unknown", Counter())
        amounts[RollupMeasure.RUNS] += 1
        amounts[RollupMeasure.INPUT_TOKENS] += call.usage.input
        amounts[RollupMeasure.OUTPUT_TOKENS] += call.usage.output
        amounts[RollupMeasure.COST_USD] += call.cost_usd
    return out

