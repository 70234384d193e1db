"""The reader contract and the store access both readers share.

``store`` (row loading, reader choice) and ``db`` (the direct database reader) both import
from here and never from each other's internals, so imports go one way:
``store -> db -> access`` and ``store -> access``.

- :class:`StoredRun` / :class:`RunQuery` / :class:`RunReader`: what a reader is asked and
  what it yields;
- :func:`open_client` / :func:`resolve_experiments`: the tracking store and experiment ids;
- :func:`mlflow_errors`: MLflow / HTTP / database exceptions as one-line ReportErrors.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from configurable_agents.config.schema import DEFAULT_TRACKING_URI, redact_uri
from configurable_agents.names import Kind, Tag
from configurable_agents.reports.model import ReportError, ReportOptionError
from configurable_agents.tracking.errors import flat_message, shorten
from configurable_agents.tracking.reachability import StoreUnreachable, check_reachable

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

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
    """A client for an existing store; a missing sqlite file is an error, not a new database.

    A database server that does not answer fails here within seconds (see
    :mod:`configurable_agents.tracking.reachability`), before MLflow's own connection retries
    (about 100 s) begin.
    """
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///").split("?", 1)[0]
        if path and path != ":memory:" and not Path(path).exists():
            raise ReportError(f"no MLflow database at {path} (tracking URI {redact_uri(uri)})")
    try:
        check_reachable(uri)
    except StoreUnreachable as exc:
        raise ReportError(str(exc)) from None
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
            raise ReportOptionError(
                f"invalid filter {filter_string!r}: {shorten(message)}") from None
        reach = ("Connection", "Max retries", "timed out", "refused", "Name or service")
        if any(word in message for word in reach):
            raise ReportError(
                f"cannot reach tracking server {redact_uri(uri)}: {shorten(message)}"
            ) from None
        raise ReportError(f"cannot {doing} at {redact_uri(uri)}: {shorten(message)}") from None


def our_experiments(client: MlflowClient) -> list[tuple[str, str]]:
    """``(name, id)`` of every active experiment holding a configurable-agents workflow run.

    The default scope of reports and retention: right after ``make demo`` the runs live in
    ``article_writer`` and ``qa_assistant``, and a newcomer should not have to know that.
    """
    from mlflow.entities import ViewType

    ours = f"tags.`{Tag.KIND}` = '{Kind.WORKFLOW}'"
    found: list[tuple[str, str]] = []
    token: str | None = None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, page_token=token)
        for experiment in page:
            if client.search_runs([experiment.experiment_id], ours, max_results=1):
                found.append((experiment.name, experiment.experiment_id))
        token = page.token
        if not token:
            return found


def default_experiments(client: MlflowClient, uri: str) -> tuple[tuple[str, ...], list[str]]:
    """Names and ids when no experiment is given: ``$MLFLOW_EXPERIMENT_NAME``, else ours."""
    configured = os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip()
    if configured:
        return (configured,), resolve_experiments(client, uri, (configured,))
    with mlflow_errors(uri, "read experiments"):
        ours = our_experiments(client)
    if not ours:
        raise ReportError(f"no configurable-agents runs at {redact_uri(uri)} (run `make demo`, "
                          "or pass --tracking-uri / --experiment)")
    return tuple(name for name, _ in ours), [id_ for _, id_ in ours]


def select_experiments(client: MlflowClient, uri: str,
                       names: Sequence[str] | None) -> tuple[tuple[str, ...], list[str]]:
    """The experiments a read covers: those named, else :func:`default_experiments`."""
    if names:
        return tuple(names), resolve_experiments(client, uri, names)
    return default_experiments(client, uri)


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
                raise ReportOptionError(
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
