"""Write RunPlans to MLflow through ``MlflowClient`` only (never MLflow internals or its DB).

Each run costs the fewest backend calls MLflow's REST API allows: create_run (tags and
the real start time), one log_batch (params, metrics; chunked only past MLflow's per-call
limits), one upload per artifact file, set_terminated with the workflow's real end time.
The artifact upload goes to the run's ``artifact_uri`` from create_run's answer, through
the same artifact repository ``MlflowClient.log_artifacts`` picks; the client itself would
first fetch the run (one ``runs/get`` per run) only to learn that URI.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from configurable_agents.names import Kind, Tag
from configurable_agents.observability.sinks.mlflow.clean import clean_plan
from configurable_agents.observability.sinks.mlflow.client import (
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_RETRY_BUDGET_S,
    RetryingClient,
    build_client,
)
from configurable_agents.observability.sinks.mlflow.keys import safe_artifact_name
from configurable_agents.observability.sinks.run_plan import RunPlan
from configurable_agents.tracking.artifacts import (
    default_artifact_location as _default_artifact_location,
)
from configurable_agents.tracking.uri import prepare_tracking_uri

# MLflow's log_batch limits per call.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_REMEMBERED_ARTIFACT_URIS = 4096  # runs created here whose artifacts are still to come

PARENT_TAG = Tag.MLFLOW_PARENT_RUN_ID
RUN_NAME_TAG = "mlflow.runName"
_FILTER_SAFE = re.compile(r"[\w\-.:]{1,256}")


class MlflowWriter:
    """Thread-safe facade: experiments cached by name; one client per writer."""

    def __init__(self, tracking_uri: str, *, request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
                 retry_budget_s: float = DEFAULT_RETRY_BUDGET_S) -> None:
        self.tracking_uri = prepare_tracking_uri(tracking_uri)
        # MLflow prints a "View run at http://..." line per finished run on a server URI;
        # from a background exporter that would litter the app's stdout.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        # Our retries, not MLflow's (client.py): idempotent creates, a total time budget.
        self.request_timeout_s = request_timeout_s
        self.client = RetryingClient(build_client(self.tracking_uri, request_timeout_s),
                                     retry_budget_s)
        self._experiments: dict[str, str] = {}
        self.artifacts_failing: str | None = None  # a run whose artifact upload failed
        self._lock = threading.Lock()
        self._artifact_uris: dict[str, str] = {}  # run id -> artifact_uri, from create_run

    # ---- experiments ----------------------------------------------------------------------

    def experiment_id(self, name: str, tags: dict[str, str] | None = None) -> str:
        cached = self._experiments.get(name)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._experiments.get(name)
            if cached is not None:
                return cached
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                try:
                    experiment_id = self.client.create_experiment(
                        name,
                        artifact_location=_default_artifact_location(self.tracking_uri, name),
                        tags=tags,
                    )
                except MlflowException:
                    # Another process created it first.
                    experiment = self.client.get_experiment_by_name(name)
                    if experiment is None:
                        raise
                    experiment_id = experiment.experiment_id
            else:
                if experiment.lifecycle_stage == "deleted":
                    self.client.restore_experiment(experiment.experiment_id)
                experiment_id = experiment.experiment_id
            self._experiments[name] = experiment_id
            return experiment_id

    def forget_experiment(self, name: str) -> None:
        """Drop a cached id (its experiment was deleted): the next lookup restores/recreates."""
        with self._lock:
            self._experiments.pop(name, None)

    # ---- runs ----------------------------------------------------------------------------

    def create_run(
        self, experiment_id: str, plan: RunPlan, parent_run_id: str | None = None
    ) -> str:
        tags = dict(plan.tags)
        if parent_run_id is not None:
            tags[PARENT_TAG] = parent_run_id
        run = self.client.create_run(
            experiment_id, start_time=plan.start_ms, tags=tags, run_name=plan.run_name
        )
        if run.info.artifact_uri:
            with self._lock:
                self._artifact_uris[run.info.run_id] = run.info.artifact_uri
                if len(self._artifact_uris) > MAX_REMEMBERED_ARTIFACT_URIS:
                    self._artifact_uris.pop(next(iter(self._artifact_uris)), None)
        return run.info.run_id

    def complete_run(self, run_id: str, plan: RunPlan, *, tags_already_set: bool = True) -> None:
        """Log params, metrics (and tags if needed), artifacts, then terminate the run."""
        timestamp = plan.end_ms
        metrics = [Metric(k, float(v), timestamp, 0) for k, v in plan.metrics.items()]
        params = [Param(k, v) for k, v in plan.params.items()]
        tags = [] if tags_already_set else [RunTag(k, v) for k, v in plan.tags.items()]
        for m, p, t in _batches(metrics, params, tags):
            self.client.log_batch(run_id, metrics=m, params=p, tags=t, synchronous=True)
        if plan.artifacts:
            self._log_artifacts(run_id, plan.artifacts)
        self.client.set_terminated(run_id, status=plan.status, end_time=plan.end_ms)

    def update_tags(self, run_id: str, tags: dict[str, str]) -> None:
        items = [RunTag(k, v) for k, v in tags.items()]
        for _, _, t in _batches([], [], items):
            self.client.log_batch(run_id, tags=t, synchronous=True)

    def _log_artifacts(self, run_id: str, artifacts: dict[str, str]) -> None:
        """Every name is re-checked here, the last gate before the disk (spool files too)."""
        with tempfile.TemporaryDirectory(prefix="ca-artifacts-") as tmp:
            root = Path(tmp).resolve()
            written = 0
            for name, text in artifacts.items():
                rel = safe_artifact_name(name)
                path = (root / rel).resolve() if rel else None
                if path is None or not path.is_relative_to(root) or path == root:
                    continue  # clean_plan already logged it; never write outside the run
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(str(text), encoding="utf-8", errors="replace")
                written += 1
            with self._lock:
                artifact_uri = self._artifact_uris.pop(run_id, None)
            if not written:
                return
            try:
                self._upload(run_id, root, artifact_uri)
            except Exception:
                self.artifacts_failing = run_id  # the probe checks the artifact store too
                raise
            self.artifacts_failing = None

    def _upload(self, run_id: str, root: Path, artifact_uri: str | None) -> None:
        """Upload to the URI create_run returned (no runs/get per run), else via the client."""
        if artifact_uri is None or self.tracking_uri.startswith("databricks"):
            self.client.log_artifacts(run_id, str(root))  # fetches the run for its URI
            return
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repository = get_artifact_repository(artifact_uri, tracking_uri=self.tracking_uri)
        # The artifact repository sends its own requests (not through our REST store):
        # an upload to the same path is idempotent, so a lost response is re-sent here.
        self.client.retry(lambda: repository.log_artifacts(str(root)))

    def write_tree(
        self,
        experiment_id: str,
        plan: RunPlan,
        parent_run_id: str | None,
        *,
        idempotent: bool = False,
        langchain_run_id: str | None = None,
    ) -> str:
        """Write ``plan`` and all its children; returns the parent's MLflow run id.

        ``parent_run_id`` is a run created earlier (at workflow start) to complete.
        With ``idempotent`` (retries, spool replays) runs already written for the same
        LangChain run ids are found and completed or skipped, never duplicated.
        """
        plan = clean_plan(plan)
        if parent_run_id is not None and not self._owns(
            experiment_id, parent_run_id, langchain_run_id
        ):
            parent_run_id = None  # not ours to touch: find or create our own run instead
            idempotent = True
        if idempotent and parent_run_id is None and langchain_run_id:
            existing = self.find_parent_run(experiment_id, langchain_run_id)
            parent_run_id = existing.info.run_id if existing is not None else None
        if parent_run_id is None:
            parent_run_id = self.create_run(experiment_id, plan)
            self.complete_run(parent_run_id, plan)
        elif not (idempotent and self._is_terminated(parent_run_id)):
            self.complete_run(parent_run_id, plan, tags_already_set=False)
        self._write_children(experiment_id, plan, parent_run_id, idempotent)
        return parent_run_id

    def _write_children(
        self, experiment_id: str, plan: RunPlan, parent_run_id: str, idempotent: bool
    ) -> None:
        existing: dict[str, Any] = {}
        if idempotent and plan.children:
            existing = {
                run.data.tags.get(Tag.LANGCHAIN_RUN_ID): run
                for run in self.client.search_runs(
                    [experiment_id],
                    filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
                    max_results=5000,
                )
            }
        for child in plan.children:
            found = existing.get(child.tags.get(Tag.LANGCHAIN_RUN_ID))
            if found is None:
                child_id = self.create_run(experiment_id, child, parent_run_id)
                self.complete_run(child_id, child)
            else:
                child_id = found.info.run_id
                if found.info.status == "RUNNING":
                    self.complete_run(child_id, child)
            self._write_children(experiment_id, child, child_id, idempotent and found is not None)

    def _owns(self, experiment_id: str, run_id: str, langchain_run_id: str | None) -> bool:
        """Is ``run_id`` a run of this experiment carrying this workflow's LangChain run id?

        A spool file names the run to complete; a forged one could name another
        experiment's (or tenant's) run. Only a run that matches both is touched.
        """
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return False
        return (
            run.info.experiment_id == experiment_id
            and langchain_run_id is not None
            and run.data.tags.get(Tag.LANGCHAIN_RUN_ID) == langchain_run_id
        )

    def _is_terminated(self, run_id: str) -> bool:
        return self.client.get_run(run_id).info.status != "RUNNING"

    def ping(self) -> bool:
        """True when the backend answers: /health for a server, a tiny query for a database.

        After an artifact upload failed, also one listing of that run's artifacts: a
        server whose artifact store (S3) is down still says healthy, and every workflow
        would pay its retries before being spooled.
        """
        if self.tracking_uri.startswith(("http://", "https://")):
            import requests

            response = requests.get(self.tracking_uri.rstrip("/") + "/health", timeout=3)
            if response.status_code != 200:
                return False
        else:
            self.client.search_experiments(max_results=1)
        failing = self.artifacts_failing
        if failing is not None:
            self.client.client.list_artifacts(failing)  # once, not retried: raises if down
            self.artifacts_failing = None
        return True

    def find_parent_run(self, experiment_id: str, langchain_run_id: str) -> Any:
        """The parent run already written for a LangChain root run id, if any (idempotency)."""
        if not _FILTER_SAFE.fullmatch(langchain_run_id):
            return None  # never spliced into a filter string; such ids are not replayable
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.{Tag.LANGCHAIN_RUN_ID} = '{langchain_run_id}' "
                f"and tags.`{Tag.KIND}` = '{Kind.WORKFLOW}'"
            ),
            max_results=1,
        )
        return runs[0] if runs else None


def _batches(
    metrics: list[Metric], params: list[Param], tags: list[RunTag]
) -> Iterator[tuple[list[Metric], list[Param], list[RunTag]]]:
    """Split entities so each log_batch call stays within MLflow's limits."""
    while metrics or params or tags:
        p, params = params[:MAX_PARAMS_PER_BATCH], params[MAX_PARAMS_PER_BATCH:]
        t, tags = tags[:MAX_TAGS_PER_BATCH], tags[MAX_TAGS_PER_BATCH:]
        room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(p) - len(t))
        m, metrics = metrics[:room], metrics[room:]
        yield m, p, t
