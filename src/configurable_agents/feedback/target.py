"""Which workflow a feedback is about: an MLflow run id, a trace id, or a LangChain run id.

Apps hold different handles on an answer: the MLflow parent run id (from the runs list), the
MLflow trace id (``tr-...``, from the Traces view), or only the LangChain run id of the
invocation (``handler.run_id_for`` or a ``run_id`` passed in the config). All three name the
same workflow because the trace id *is* ``tr-`` + the LangChain root run id and the parent
run carries both (``langchain_run_id`` and ``configurable_agents.trace_id`` tags).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from configurable_agents.feedback.values import FeedbackError
from configurable_agents.names import Kind, Tag

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

_SOURCE_RUN = "mlflow.sourceRun"  # mlflow.tracing.constant.TraceMetadataKey.SOURCE_RUN
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_MAX_EXPERIMENTS = 1000


@dataclass(frozen=True, slots=True)
class FeedbackTarget:
    """The workflow's trace and, when it was written, its parent run."""

    trace_id: str
    run_id: str | None
    experiment_id: str


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def _trace_info(tracing: Any, trace_id: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return tracing.get_trace_info(trace_id)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}:
            return None
        if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
            return None
        raise


def _run(client: MlflowClient, run_id: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _workflow_run_by_langchain_id(client: MlflowClient, langchain_id: UUID) -> Any | None:
    """The parent run tagged with this LangChain run id, in any active experiment."""
    ids = [e.experiment_id for e in client.search_experiments(max_results=_MAX_EXPERIMENTS)]
    if not ids:
        return None
    runs = client.search_runs(
        ids, filter_string=f"tags.{Tag.LANGCHAIN_RUN_ID} = '{langchain_id}' "
        f"and tags.`{Tag.KIND}` = '{Kind.WORKFLOW}'", max_results=1)
    return runs[0] if runs else None


def _from_trace(client: MlflowClient, info: Any) -> FeedbackTarget:
    run_id = (info.trace_metadata or {}).get(_SOURCE_RUN)
    if run_id and _run(client, run_id) is None:
        run_id = None
    return FeedbackTarget(info.trace_id, run_id, info.experiment_id)


def _from_run(client: MlflowClient, tracing: Any, run: Any, shown: str) -> FeedbackTarget:
    tags = run.data.tags
    if tags.get(Tag.KIND) == Kind.NODE and tags.get(Tag.MLFLOW_PARENT_RUN_ID):
        parent = _run(client, tags[Tag.MLFLOW_PARENT_RUN_ID])
        if parent is not None:
            return _from_run(client, tracing, parent, shown)
    trace_id = tags.get(Tag.TRACE_ID)
    if not trace_id and (lc_id := _uuid(tags.get(Tag.LANGCHAIN_RUN_ID, ""))):
        trace_id = f"tr-{lc_id.hex}"
    info = _trace_info(tracing, trace_id) if trace_id else None
    if info is None:
        raise FeedbackError(f"run {shown} has no MLflow trace to attach feedback to "
                            f"({Tag.TRACE_SKIPPED}: {tags.get(Tag.TRACE_SKIPPED, 'no')})")
    return FeedbackTarget(info.trace_id, run.info.run_id, run.info.experiment_id)


def resolve(client: MlflowClient, tracing: Any, ref: str) -> FeedbackTarget:
    """The trace (and parent run) ``ref`` names; :class:`FeedbackError` when none does."""
    text = ref.strip() if isinstance(ref, str) else ""
    shown = text[:80] if text.isprintable() else repr(text[:80])
    if not text:
        raise FeedbackError("empty run or trace id")
    if text.startswith("tr-"):
        info = _trace_info(tracing, text) if _HEX32.match(text[3:]) else None
        if info is None:
            raise FeedbackError(f"no MLflow trace {shown}")
        return _from_trace(client, info)
    if _HEX32.match(text) and (run := _run(client, text.lower())) is not None:
        return _from_run(client, tracing, run, shown)
    langchain_id = _uuid(text)
    if langchain_id is None:
        raise FeedbackError(f"{shown} is not an MLflow run id, trace id (tr-...) or LangChain "
                            "run id")
    info = _trace_info(tracing, f"tr-{langchain_id.hex}")
    if info is not None:
        return _from_trace(client, info)
    run = _workflow_run_by_langchain_id(client, langchain_id)
    if run is not None:
        return _from_run(client, tracing, run, shown)
    raise FeedbackError(f"no MLflow run or trace for {shown}")
