"""Report rows read straight from a database-backed MLflow store (read-only).

Why this exists: ``MlflowClient.search_runs`` on a sqlite or PostgreSQL store spends ~1 ms per
run building ORM objects, expiring them on commit and converting them to entities; 20,000
workflows with 3 nodes each took over a minute for a node-level report. A report needs only a
few values per run, so this reader asks the database for exactly those, as plain tuples.

It stays faithful to MLflow by using MLflow's own pieces rather than SQL of ours:

- the filter is parsed by ``SearchUtils.parse_search_filter`` and turned into SQL by the
  store's own ``_get_sqlalchemy_filter_clauses``, so every filter means (and fails) exactly
  as it does in ``search_runs``;
- tables are addressed through MLflow's SQLAlchemy models (``SqlRun``, ``SqlTag``,
  ``SqlParam``, ``SqlLatestMetric``), which MLflow migrates with its schema.

Those are internal to MLflow, so the reader only engages for the exact store class it knows
(``SqlAlchemyStore``) and when the imports succeed; anything else (a tracking server, a
workspace-aware subclass, a future MLflow that moved them) falls back to ``search_runs``.
``tests/test_report_readers.py`` checks that both readers give identical reports, on sqlite
and on PostgreSQL.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from configurable_agents.names import Tag
from configurable_agents.reports.access import (
    PAGE_SIZE,
    RunQuery,
    StoredRun,
    gc_paused,
    mlflow_errors,
)

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient


@functools.cache
def _mlflow_internals() -> SimpleNamespace | None:
    """The MLflow pieces this reader relies on, or None when this MLflow lacks any of them."""
    try:
        from mlflow.entities import LifecycleStage
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlRun, SqlTag
        from mlflow.store.tracking.sqlalchemy_store import (
            SqlAlchemyStore,
            _get_sqlalchemy_filter_clauses,
        )
        from mlflow.utils.search_utils import SearchUtils
        from mlflow.utils.validation import _parse_experiment_ids
    except ImportError:
        return None
    return SimpleNamespace(
        LifecycleStage=LifecycleStage, SqlRun=SqlRun, SqlTag=SqlTag, SqlParam=SqlParam,
        SqlLatestMetric=SqlLatestMetric, SqlAlchemyStore=SqlAlchemyStore,
        filter_clauses=_get_sqlalchemy_filter_clauses, parse_filter=SearchUtils.parse_search_filter,
        parse_experiment_ids=_parse_experiment_ids,
    )


def _max_ids_per_query(store: Any) -> int:
    """Run ids per ``IN (...)``: SQLite before 3.32 allows only 999 bound variables."""
    if store._get_dialect() == "sqlite":
        import sqlite3

        if sqlite3.sqlite_version_info < (3, 32, 0):
            return 900
    return PAGE_SIZE


class DatabaseReader:
    """Reads active runs of a ``SqlAlchemyStore`` in chunks: heads first, then their values."""

    name = "database"

    def __init__(
        self, store: Any, uri: str, mlflow: SimpleNamespace, chunk_size: int = PAGE_SIZE
    ) -> None:
        self._store, self._uri, self._mlflow, self._chunk_size = store, uri, mlflow, chunk_size

    @classmethod
    def for_client(
        cls, client: MlflowClient, uri: str, chunk_size: int = PAGE_SIZE
    ) -> DatabaseReader | None:
        """A reader for the client's store, or None when that store is not one we can read."""
        mlflow = _mlflow_internals()
        if mlflow is None:
            return None
        store = getattr(getattr(client, "_tracking_client", None), "store", None)
        if type(store) is not mlflow.SqlAlchemyStore:
            return None
        return cls(store, uri, mlflow, min(chunk_size, _max_ids_per_query(store)))

    def search(self, query: RunQuery) -> Iterator[StoredRun]:
        count = 0
        with mlflow_errors(self._uri, "search runs", query.user_filter), gc_paused(), \
                self._store.ManagedSessionMaker() as session:
            heads = session.execute(
                self._heads_query(session, query.experiment_ids, query.filter_string)
            ).all()
            for first in range(0, len(heads), self._chunk_size):
                chunk = heads[first:first + self._chunk_size]
                tags, params, metrics = self._values(session, [head[0] for head in chunk])
                for run_id, start_ms, end_ms, status, name in chunk:
                    run_tags = tags.get(run_id, {})
                    yield StoredRun(
                        run_id=run_id,
                        start_ms=start_ms,
                        end_ms=end_ms,
                        status=status,
                        run_name=name or run_tags.get(Tag.MLFLOW_RUN_NAME, ""),
                        tags=run_tags,
                        params=params.get(run_id, {}),
                        metrics=metrics.get(run_id, {}),
                    )
                count += len(chunk)
                if query.progress:
                    query.progress(query.phase, count)

    def _heads_query(self, session: Any, experiment_ids: Sequence[str], filter_string: str) -> Any:
        """(run id, start, end, status, name) of matching active runs: search_runs' WHERE."""
        from sqlalchemy import select

        mlflow = self._mlflow
        SqlRun = mlflow.SqlRun
        parsed = mlflow.parse_filter(filter_string)
        attribute_filters, joined_filters, dataset_filters = mlflow.filter_clauses(
            parsed, session, self._store._get_dialect()
        )
        query = select(SqlRun.run_uuid, SqlRun.start_time, SqlRun.end_time, SqlRun.status,
                       SqlRun.name)
        for subquery in joined_filters:
            query = query.join(subquery)
        for subquery in dataset_filters:
            query = query.join(subquery, SqlRun.run_uuid == subquery.c.destination_id)
        parsed_ids = mlflow.parse_experiment_ids(experiment_ids)
        ids = self._store._filter_experiment_ids(session, parsed_ids)  # workspaces hook
        return query.where(
            SqlRun.experiment_id.in_(ids),
            SqlRun.lifecycle_stage == mlflow.LifecycleStage.ACTIVE,
            *attribute_filters,
        ).distinct()

    def _values(
        self, session: Any, run_ids: list[str]
    ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]], dict[str, dict[str, float]]]:
        """Tags, params and latest metrics of ``run_ids``, as ``{run id: {key: value}}``."""
        from sqlalchemy import select

        mlflow = self._mlflow
        SqlLatestMetric = mlflow.SqlLatestMetric
        tags: dict[str, dict[str, str]] = {}
        params: dict[str, dict[str, str]] = {}
        metrics: dict[str, dict[str, float]] = {}
        connection = session.connection()  # Core rows: no ORM identity map to fill and expire
        for model, target in ((mlflow.SqlTag, tags), (mlflow.SqlParam, params)):
            query = select(model.run_uuid, model.key, model.value).where(
                model.run_uuid.in_(run_ids))
            for run_id, key, value in connection.execute(query):
                target.setdefault(run_id, {})[key] = value
        query = select(SqlLatestMetric.run_uuid, SqlLatestMetric.key, SqlLatestMetric.value,
                       SqlLatestMetric.is_nan).where(SqlLatestMetric.run_uuid.in_(run_ids))
        for run_id, key, value, is_nan in connection.execute(query):
            metrics.setdefault(run_id, {})[key] = float("nan") if is_nan else value
        return tags, params, metrics
