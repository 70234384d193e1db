"""Reading report rows out of an MLflow store.

Two readers yield the same :class:`StoredRun` s for the same (experiments, filter):

- :class:`SearchRunsReader` pages through ``MlflowClient.search_runs``. It works with every
  tracking URI (``http(s)://`` servers, Databricks, sqlite, PostgreSQL) and costs about 1 ms
  per run, almost all of it MLflow building ORM objects and entities.
- ``report_db.DatabaseReader`` reads the same rows straight from a database-backed store
  (``sqlite:///``, ``postgresql://``, ``mysql://``), read-only and ~5x faster. It is used when
  the tracking URI is a database and MLflow's own store classes are the ones we know.

Workflow rows come from one search (``tags.configurable_agents.kind = 'workflow'`` plus the
time window and the user's filter). Node rows (``node``/``model`` groupings, comparisons)
come from a second search over the same time span, joined to their workflow run through
``mlflow.parentRunId`` (subgraph nodes walk up to the workflow run).
"""

from __future__ import annotations

import gc
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from configurable_agents.config.schema import DEFAULT_TRACKING_URI, redact_uri
from configurable_agents.reports.model import ReportError, RunRow
from configurable_agents.tracking.errors import flat_message, shorten

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities import Run

KIND_TAG = "configurable_agents.kind"
PARENT_TAG = "mlflow.parentRunId"
PAGE_SIZE = 5000

ProgressFn = Callable[[str, int], None]
"""Called as ``progress(phase, runs_read_so_far)`` after each page; phase is 'workflow'/'node'."""


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One run as both readers return it: its attributes and its tag/param/metric values."""

    run_id: str
    start_ms: int | None
    end_ms: int | None
    status: str
    run_name: str
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: Mapping[str, float]  # latest value per key, NaN kept


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Active runs of ``experiment_ids`` matching the MLflow search ``filter_string``."""

    experiment_ids: Sequence[str]
    filter_string: str
    user_filter: str | None  # the user's part of filter_string, named in a bad-filter error
    phase: str  # 'workflow' or 'node', for progress
    progress: ProgressFn | None = None


class RunReader(Protocol):
    name: str

    def search(self, query: RunQuery) -> Iterator[StoredRun]: ...


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    """Explicit URI, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def open_client(tracking_uri: str | None = None) -> tuple[MlflowClient, str]:
    """A client for an existing store; a missing sqlite file is an error, not a new database."""
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///").split("?", 1)[0]
        if path and path != ":memory:" and not Path(path).exists():
            raise ReportError(f"no MLflow database at {path} (tracking URI {redact_uri(uri)})")
    with mlflow_errors(uri, "open the tracking store"):
        return MlflowClient(tracking_uri=uri), uri


@contextmanager
def mlflow_errors(uri: str, doing: str, filter_string: str | None = None) -> Iterator[None]:
    """Turn MLflow / HTTP / DB exceptions into one-line ReportErrors with the URI redacted."""
    try:
        yield
    except ReportError:
        raise
    except Exception as exc:
        message = flat_message(exc, uri)
        code = getattr(exc, "error_code", "")
        if filter_string and code == "INVALID_PARAMETER_VALUE":
            raise ReportError(f"invalid filter {filter_string!r}: {shorten(message)}") from None
        reach = ("Connection", "Max retries", "timed out", "refused", "Name or service")
        if any(word in message for word in reach):
            raise ReportError(
                f"cannot reach tracking server {redact_uri(uri)}: {shorten(message)}"
            ) from None
        raise ReportError(f"cannot {doing} at {redact_uri(uri)}: {shorten(message)}") from None


def resolve_experiments(client: MlflowClient, uri: str, names: Sequence[str]) -> list[str]:
    """Experiment ids for names (or ids); an unknown one lists what exists."""
    ids: list[str] = []
    with mlflow_errors(uri, "read experiments"):
        for name in names:
            experiment = client.get_experiment_by_name(name)
            if experiment is None and name.isdigit():
                try:
                    experiment = client.get_experiment(name)
                except Exception:
                    experiment = None
            if experiment is None:
                known = [e.name for e in client.search_experiments(max_results=20)]
                hint = f"; known: {', '.join(known)}" if known else ""
                raise ReportError(
                    f"unknown experiment {name!r} at {redact_uri(uri)}{hint}"
                )
            ids.append(experiment.experiment_id)
    return list(dict.fromkeys(ids))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while MLflow builds tens of thousands of ORM objects.

    Measured on sqlite: reading 20,000 runs takes ~12 s with the collector paused and ~40 s
    with it running (it rescans the growing heap again and again). Nothing here is cyclic.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
        from configurable_agents.reports.db import DatabaseReader

        reader = DatabaseReader.for_client(client, uri, chunk_size=page_size)
        if reader is not None:
            return reader
    return SearchRunsReader(client, uri, page_size)


def _and(*clauses: str | None) -> str:
    return " AND ".join(f"{c}" for c in clauses if c and c.strip())


def _metric(metrics: Mapping[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None or math.isnan(value) else value


def _row(run: StoredRun, kind: Literal["workflow", "node"]) -> RunRow:
    tags, params, metrics = run.tags, run.params, run.metrics
    prefix = "total_" if kind == "workflow" else ""
    status_metric = _metric(metrics, "status")
    if kind == "workflow":
        status = tags.get("status") or run.status
        duration = _metric(metrics, "duration_seconds")
        retries = _metric(metrics, "retry_count")
    else:
        if status_metric is not None and run.status in ("FINISHED", "FAILED"):
            status = "FINISHED" if status_metric >= 1 else "FAILED"
        else:
            status = run.status
        duration_ms = _metric(metrics, "node_duration_ms")
        duration = None if duration_ms is None else duration_ms / 1000
        retries = _metric(metrics, "retries")
    if duration is None and run.end_ms and run.start_ms:
        duration = (run.end_ms - run.start_ms) / 1000
    if run.status in ("RUNNING", "SCHEDULED"):
        succeeded = None
    elif status_metric is not None:
        succeeded = status_metric >= 1
    else:
        succeeded = status == "FINISHED"
    return RunRow(
        run_id=run.run_id,
        kind=kind,
        start_ms=run.start_ms or 0,
        status=status,
        succeeded=succeeded,
        input_tokens=_metric(metrics, f"{prefix}input_tokens") or 0.0,
        output_tokens=_metric(metrics, f"{prefix}output_tokens") or 0.0,
        cost_usd=_metric(metrics, "total_cost_usd" if kind == "workflow" else "cost_usd") or 0.0,
        priced=tags.get("pricing") != "unknown",
        duration_s=duration,
        retries=retries or 0.0,
        tags=tags,
        params=params,
        run_name=run.run_name,
        parent_id=tags.get(PARENT_TAG),
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
    """Workflow (parent) runs matching the window and the user's filter."""
    where = _and(f"tags.`{KIND_TAG}` = 'workflow'", *_time_clauses(since, until), filter_string)
    runs = reader.search(RunQuery(experiment_ids, where, filter_string, "workflow", progress))
    return _in_order({r.run_id: _row(r, "workflow") for r in runs})


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
    if not workflows:
        return []
    by_id = {w.run_id: w for w in workflows}
    first = min(w.start_ms for w in workflows)
    ends = [w.start_ms + w.duration_s * 1000 if w.duration_s is not None else None
            for w in workflows]
    clauses = [f"tags.`{KIND_TAG}` = 'node'", f"attributes.start_time >= {first - 1000}"]
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
            listed = workflow.tags.get("unpriced_models", "").split(",")
            models = {m.strip() for m in listed} - {""}
            node.priced = bool(models) and node.params.get("node_model") not in models
        out.append(node)
    return _exclusive_amounts(out)


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
