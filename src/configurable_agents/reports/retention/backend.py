"""Retention's access to one tracking store: a client, experiments, paged searches, errors.

Everything goes through ``MlflowClient`` (``search_runs`` with server-side filters and page
tokens), so memory and time follow the number of runs matched, not the size of the
experiment. MLflow / HTTP / database exceptions leave as one-line :class:`RetentionError` s
with the URI's credentials masked, and a database that does not answer fails in seconds
(:func:`configurable_agents.tracking.reachability.check_reachable`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from configurable_agents.config.schema import redact_uri
from configurable_agents.names import Kind, Tag
from configurable_agents.reports.retention.model import (
    OTHER_RUNS_COUNT_LIMIT,
    RetentionError,
    RunRef,
    RunTree,
)
from configurable_agents.tracking.errors import flat_message, shorten
from configurable_agents.tracking.reachability import StoreUnreachable, check_reachable
from configurable_agents.tracking.uri import prepare_tracking_uri

# Nested runs start inside their parent's lifetime; the slack only widens the scan window
# that finds them (membership is decided by the parent-id chain, never by time).
_SCAN_SLACK_MS = 3_600_000
# The only tags cleanup reads; keeping just these bounds memory on large cleanups.
_KEPT_TAGS = frozenset({Tag.KIND, Tag.MLFLOW_PARENT_RUN_ID, Tag.HOST, Tag.PID,
                        Tag.HEARTBEAT_MS, Tag.TRACE_ID})


@contextmanager
def store_errors(uri: str, doing: str) -> Iterator[None]:
    """MLflow / HTTP / database exceptions as one-line RetentionErrors, URI redacted."""
    try:
        yield
    except RetentionError:
        raise
    except Exception as exc:
        message = flat_message(exc, uri)
        reach = {
            "refused": "connection refused",
            "timed out": "timed out",
            "Name or service": "unknown host",
            "Max retries": "no response",
            "Connection": "connection failed",
        }
        for word, cause in reach.items():
            if word in message:
                raise RetentionError(
                    f"cannot reach tracking server {redact_uri(uri)} ({cause})"
                ) from None
        raise RetentionError(
            f"cannot {doing} at {redact_uri(uri)}: {shorten(message)}") from None


class Backend:
    """One tracking store: a client, its experiments, paged searches, translated errors."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow.tracking import MlflowClient

        if not tracking_uri or not tracking_uri.strip():
            raise RetentionError("tracking URI is empty; pass e.g. sqlite:///mlflow.db")
        self.uri = prepare_tracking_uri(tracking_uri.strip())
        self.display_uri = redact_uri(self.uri)
        if self.uri.startswith("sqlite:///"):
            # MLflow would silently create an empty database: a typo must not look like
            # "nothing to clean up".
            path = self.uri.removeprefix("sqlite:///").split("?", 1)[0]
            if path and path != ":memory:" and not Path(path).exists():
                raise RetentionError(f"no MLflow database at {path} ({self.display_uri})")
        try:
            check_reachable(self.uri)
        except StoreUnreachable as exc:
            raise RetentionError(str(exc)) from None
        with store_errors(self.uri, "open the tracking store"):
            self.client = MlflowClient(tracking_uri=self.uri)

    def experiments(self, names: Sequence[str]) -> list[tuple[str, str]]:
        """``(name, id)`` for each name; an unknown one is an error naming what exists.

        No names: every active experiment holding configurable-agents workflow runs.
        """
        if not names:
            from configurable_agents.reports.access import our_experiments

            with store_errors(self.uri, "read experiments"):
                return our_experiments(self.client)
        found: dict[str, tuple[str, str]] = {}
        with store_errors(self.uri, "read experiments"):
            for name in names:
                experiment = self.client.get_experiment_by_name(name)
                if experiment is not None and experiment.lifecycle_stage != "active":
                    raise RetentionError(
                        f"experiment {name!r} at {self.display_uri} is deleted; restore it "
                        "first, or remove it for good with `mlflow gc`"
                    )
                if experiment is None:
                    known = [e.name for e in self.client.search_experiments(max_results=20)]
                    hint = f"; known: {', '.join(known)}" if known else ""
                    raise RetentionError(
                        f"unknown experiment {name!r} at {self.display_uri}{hint}"
                    )
                found.setdefault(experiment.experiment_id, (name, experiment.experiment_id))
        return list(found.values())

    def search(self, experiment_id: str, filter_string: str, page_size: int) -> Iterator[RunRef]:
        """Every active run matching ``filter_string``, page by page (page tokens)."""
        from mlflow.entities import ViewType

        token: str | None = None
        while True:
            with store_errors(self.uri, "search runs"):
                page = self.client.search_runs(
                    [experiment_id],
                    filter_string,
                    ViewType.ACTIVE_ONLY,
                    max_results=page_size,
                    order_by=["attributes.start_time ASC"],
                    page_token=token,
                )
            for run in page:
                info = run.info
                yield RunRef(
                    run_id=info.run_id,
                    run_name=info.run_name or "",
                    start_time=int(info.start_time or 0),
                    end_time=int(info.end_time) if info.end_time else None,
                    status=info.status,
                    tags={k: v for k, v in run.data.tags.items() if k in _KEPT_TAGS},
                )
            token = page.token
            if not token or not page:
                return

    def count_foreign(self, experiment_id: str, before_ms: int, page_size: int) -> tuple[int, bool]:
        """Runs started before ``before_ms`` without our kind tag: (count, count was capped).

        Cleanup never deletes these; the count tells a user why "0 matched" on an experiment
        full of old runs (they were logged by other code). Counting stops at
        OTHER_RUNS_COUNT_LIMIT so an experiment of millions costs a bounded read.
        """
        filter_string = (
            f"attributes.start_time < {before_ms} and tags.`{Tag.KIND}` IS NULL"
        )
        count = 0
        for _ in self.search(experiment_id, filter_string, page_size):
            count += 1
            if count >= OTHER_RUNS_COUNT_LIMIT:
                return count, True
        return count, False

    def descendants(
        self, experiment_id: str, roots: Sequence[RunRef], now_ms: int, page_size: int
    ) -> dict[str, list[RunRef]]:
        """Children of every run under ``roots``, keyed by parent id (one windowed scan).

        Nested runs live inside their root's lifetime, so one search over that time window
        finds them all; the parent-id chain then decides membership. Runs without our kind
        tag are never returned, so a run someone else nested under ours is never touched.
        """
        if not roots:
            return {}
        low = min(r.start_time for r in roots) - _SCAN_SLACK_MS
        high = max(r.end_time or now_ms for r in roots) + _SCAN_SLACK_MS
        filter_string = (
            f"attributes.start_time >= {low} and attributes.start_time <= {high} "
            f"and tags.`{Tag.MLFLOW_PARENT_RUN_ID}` IS NOT NULL and tags.`{Tag.KIND}` IS NOT NULL"
        )
        children: dict[str, list[RunRef]] = {}
        for run in self.search(experiment_id, filter_string, page_size):
            parent = run.tags.get(Tag.MLFLOW_PARENT_RUN_ID)
            if parent and run.tags.get(Tag.KIND) != Kind.WORKFLOW:
                children.setdefault(parent, []).append(run)
        return children


def run_tree(root: RunRef, children: dict[str, list[RunRef]]) -> RunTree:
    """Post-order walk (descendants first); a visited set guards against id cycles."""
    order: list[RunRef] = []
    seen = {root.run_id}
    stack: list[tuple[RunRef, bool]] = [(root, False)]
    while stack:
        run, expanded = stack.pop()
        if expanded:
            order.append(run)
            continue
        stack.append((run, True))
        for child in children.get(run.run_id, ()):
            if child.run_id not in seen:
                seen.add(child.run_id)
                stack.append((child, False))
    return RunTree(root=root, runs=order)


def current_ms() -> int:
    return int(time.time() * 1000)

