"""Reading report rows out of an MLflow store.

Two readers yield the same :class:`StoredRun` s for the same (experiments, filter):

- :class:`SearchRunsReader` pages through ``MlflowClient.search_runs``. It works with every
  tracking URI (``http(s)://`` servers, Databricks, sqlite, PostgreSQL) and costs about 1 ms
  per run, almost all of it MLflow building ORM objects and entities.
- ``db.DatabaseReader`` reads the same rows straight from a database-backed store
  (``sqlite:///``, ``postgresql://``, ``mysql://``), read-only and ~5x faster. It is used when
  the tracking URI is a database and MLflow's own store classes are the ones we know.

Workflow rows come from one search (``tags.configurable_agents.kind = 'workflow'`` plus the
time window and the user's filter). Node rows (``node``/``model`` groupings, comparisons)
come from a second search over the same time span, joined to their workflow run through
``mlflow.parentRunId`` (subgraph nodes walk up to the workflow run).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from configurable_agents.names import PRICING_UNKNOWN, Kind, Metric, Param, Tag
from configurable_agents.reports.access import (
    PAGE_SIZE,
    ProgressFn,
    RunQuery,
    RunReader,
    StoredRun,
    gc_paused,
    mlflow_errors,
    open_client,
    resolve_experiments,
    resolve_tracking_uri,
    select_experiments,
)
from configurable_agents.reports.db import DatabaseReader
from configurable_agents.reports.model import RunRow, outcome_of
from configurable_agents.reports.rollups import rollup_rows, unique_rollups
from configurable_agents.reports.scores import run_scores

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = [
    "PAGE_SIZE",
    "ProgressFn",
    "RunQuery",
    "RunReader",
    "SearchRunsReader",
    "StoredRun",
    "load_node_rows",
    "load_workflow_rows",
    "open_client",
    "open_reader",
    "resolve_experiments",
    "resolve_tracking_uri",
    "select_experiments",
]


class SearchRunsReader:
    """Pages through ``MlflowClient.search_runs``: works against every kind of store."""

    name = "search_runs"

    def __init__(self, client: MlflowClient, uri: str, page_size: int = PAGE_SIZE) -> None:
        self._client, self._uri, self._page_size = client, uri, page_size

    def search(self, query: RunQuery) -> Iterator[StoredRun]:
        from mlflow.entities import ViewType

        token: str | None = None
        count = 0
        while True:
            with mlflow_errors(self._uri, "search runs", query.user_filter), gc_paused():
                page = self._client.search_runs(
                    list(query.experiment_ids), query.filter_string, ViewType.ACTIVE_ONLY,
                    max_results=self._page_size, page_token=token,
                )
            yield from map(_stored, page)
            count += len(page)
            if query.progress:
                query.progress(query.phase, count)
            token = page.token
            if not token or not page:
                return


def _stored(run: Run) -> StoredRun:
    info, data = run.info, run.data
    return StoredRun(
        run_id=info.run_id,
        start_ms=info.start_time,
        end_ms=info.end_time,
        status=info.status,
        run_name=info.run_name or "",
        tags=data.tags,
        params=data.params,
        metrics=data.metrics,
    )


def open_reader(
    client: MlflowClient, uri: str, *, direct_db: bool = True, page_size: int = PAGE_SIZE
) -> RunReader:
    """The database reader when ``direct_db`` and the store is one it can read, else search_runs."""
    if direct_db:
        reader = DatabaseReader.for_client(client, uri, chunk_size=page_size)
        if reader is not None:
            return reader
    return SearchRunsReader(client, uri, page_size)


def _kind_clause(kind: str) -> str:
    return f"tags.`{Tag.KIND}` = '{kind}'"


def _and(*clauses: str | None) -> str:
    return " AND ".join(f"{c}" for c in clauses if c and c.strip())


def _metric(metrics: Mapping[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None or math.isnan(value) else value


def _row(run: StoredRun, kind: Literal["workflow", "node"]) -> RunRow:
    tags, params, metrics = run.tags, run.params, run.metrics
    status, outcome = outcome_of(run.status, tags.get(Tag.STATUS), _metric(metrics, Metric.STATUS))
    if kind == Kind.WORKFLOW:
        duration = _metric(metrics, Metric.DURATION_SECONDS)
        retries = _metric(metrics, Metric.RETRY_COUNT)
        input_tokens = _metric(metrics, Metric.TOTAL_INPUT_TOKENS)
        output_tokens = _metric(metrics, Metric.TOTAL_OUTPUT_TOKENS)
        cost = _metric(metrics, Metric.TOTAL_COST_USD)
    else:
        duration_ms = _metric(metrics, Metric.NODE_DURATION_MS)
        duration = None if duration_ms is None else duration_ms / 1000
        retries = _metric(metrics, Metric.RETRIES)
        input_tokens = _metric(metrics, Metric.INPUT_TOKENS)
        output_tokens = _metric(metrics, Metric.OUTPUT_TOKENS)
        cost = _metric(metrics, Metric.COST_USD)
    if duration is None and run.end_ms and run.start_ms:
        duration = (run.end_ms - run.start_ms) / 1000
    return RunRow(
        run_id=run.run_id,
        kind=kind,
        start_ms=run.start_ms or 0,
        status=status,
        outcome=outcome,
        input_tokens=input_tokens or 0.0,
        output_tokens=output_tokens or 0.0,
        cost_usd=cost or 0.0,
        priced=tags.get(Tag.PRICING) != PRICING_UNKNOWN,
        duration_s=duration,
        retries=retries or 0.0,
        tags=tags,
        params=params,
        run_name=run.run_name,
        parent_id=tags.get(Tag.MLFLOW_PARENT_RUN_ID),
        scores=run_scores(metrics) if kind == Kind.WORKFLOW else {},
    )


def _in_order(rows: Mapping[str, RunRow]) -> list[RunRow]:
    """Rows by (start, run id): both readers then sum floats in the same order."""
    return sorted(rows.values(), key=lambda r: (r.start_ms, r.run_id))


def _time_clauses(since: datetime | None, until: datetime | None) -> list[str]:
    clauses = []
    if since:
        clauses.append(f"attributes.start_time >= {int(since.timestamp() * 1000)}")
    if until:
        clauses.append(f"attributes.start_time < {int(until.timestamp() * 1000)}")
    return clauses


def load_workflow_rows(
    reader: RunReader,
    experiment_ids: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    filter_string: str | None = None,
    progress: ProgressFn | None = None,
) -> list[RunRow]:
    """Workflow (parent) runs matching the window and the user's filter, plus rollup rows.

    Rollup runs (sampled-out workflows, summed per bucket) match the same window and
    filter (they carry the workflow name and version params); each adds its weighted
    rows once, so totals stay exact under sampling.
    """
    where = _and(_kind_clause(Kind.WORKFLOW), *_time_clauses(since, until), filter_string)
    runs = reader.search(RunQuery(experiment_ids, where, filter_string, "workflow", progress))
    rows = _in_order({r.run_id: _row(r, "workflow") for r in runs})
    where = _and(_kind_clause(Kind.ROLLUP), *_time_clauses(since, until), filter_string)
    rollups = reader.search(RunQuery(experiment_ids, where, filter_string, "rollup", progress))
    for run in sorted(unique_rollups(rollups), key=lambda r: (r.start_ms or 0, r.run_id)):
        rows.extend(rollup_rows(run))
    return rows


def load_node_rows(
    reader: RunReader,
    experiment_ids: Sequence[str],
    workflows: Sequence[RunRow],
    *,
    progress: ProgressFn | None = None,
) -> list[RunRow]:
    """Node runs of ``workflows``: one search over their time span, joined on the parent tag.

    Nodes start after their workflow starts and before it ends, so the window
    [first workflow start, last workflow end] holds them all (open-ended while a workflow is
    still running). Subgraph nodes are attached to the workflow through their parent node.
    """
    # Keyed by id like the searched nodes: a rollup listed on both sides counts once.
    rolled = list({n.run_id: n for w in workflows for n in w.rollup_nodes}.values())
    workflows = [w for w in workflows if w.tags.get(Tag.KIND) != Kind.ROLLUP]
    if not workflows:
        return rolled
    by_id = {w.run_id: w for w in workflows}
    first = min(w.start_ms for w in workflows)
    ends = [w.start_ms + w.duration_s * 1000 if w.duration_s is not None else None
            for w in workflows]
    clauses = [_kind_clause(Kind.NODE), f"attributes.start_time >= {first - 1000}"]
    if all(e is not None for e in ends):
        clauses.append(f"attributes.start_time <= {int(max(e for e in ends if e)) + 1000}")
    runs = reader.search(RunQuery(experiment_ids, _and(*clauses), None, "node", progress))
    nodes = {r.run_id: _row(r, "node") for r in runs}
    out = []
    for node in _in_order(nodes):
        parent, hops = node.parent_id, 0
        while parent in nodes and hops < 32:  # subgraph: climb to the workflow run
            parent, hops = nodes[parent].parent_id, hops + 1
        workflow = by_id.get(parent or "")
        if workflow is None:
            continue
        node.workflow = workflow
        if node.priced and not workflow.priced:
            # No node-level pricing tag: a node is unpriced when its model is one the
            # workflow lists as unpriced, or when the workflow does not say which.
            listed = workflow.tags.get(Tag.UNPRICED_MODELS, "").split(",")
            models = {m.strip() for m in listed} - {""}
            node.priced = bool(models) and node.params.get(Param.NODE_MODEL) not in models
        out.append(node)
    return [*_exclusive_amounts(out), *rolled]


def _exclusive_amounts(nodes: list[RunRow]) -> list[RunRow]:
    """A subgraph node's metrics include its children's; count each call once per report."""
    children: dict[str, list[RunRow]] = {}
    for node in nodes:
        if node.parent_id:
            children.setdefault(node.parent_id, []).append(node)
    result = []
    for node in nodes:
        kids = children.get(node.run_id)
        if kids:
            node = replace(
                node,
                input_tokens=max(0.0, node.input_tokens - sum(k.input_tokens for k in kids)),
                output_tokens=max(0.0, node.output_tokens - sum(k.output_tokens for k in kids)),
                cost_usd=max(0.0, node.cost_usd - sum(k.cost_usd for k in kids)),
            )
        result.append(node)
    return result
