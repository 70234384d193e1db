"""Feedback on a finished workflow: an MLflow assessment on its trace, summarised on its run.

``log_feedback(ref, name, value)`` accepts the MLflow parent run id, the MLflow trace id
(``tr-...``) or the LangChain run id of the invocation; see docs/guide/quality.md.

    from configurable_agents.feedback import log_feedback
    log_feedback(run_id, "thumbs_up", False, rationale="wrong city", user="alice")
"""

from __future__ import annotations

from configurable_agents.feedback.target import FeedbackTarget, resolve
from configurable_agents.feedback.values import (
    SOURCES,
    FeedbackError,
    FeedbackValue,
    check_name,
    check_source,
    check_value,
    parse_value,
)
from configurable_agents.feedback.writer import Recorded, Score, write_score
from configurable_agents.names import Quality

__all__ = [
    "SOURCES",
    "FeedbackError",
    "FeedbackTarget",
    "FeedbackValue",
    "Recorded",
    "log_feedback",
    "parse_value",
]


def _clients(tracking_uri: str | None) -> tuple[object, object]:
    import os

    from mlflow import MlflowClient
    from mlflow.tracing.client import TracingClient

    from configurable_agents.config.schema import DEFAULT_TRACKING_URI

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    return MlflowClient(tracking_uri=uri), TracingClient(uri)


def log_feedback(
    ref: str,
    name: str,
    value: FeedbackValue,
    *,
    rationale: str | None = None,
    source: str = "human",
    user: str | None = None,
    tracking_uri: str | None = None,
) -> Recorded:
    """Record feedback on the workflow ``ref`` names (run id, trace id or LangChain run id).

    ``value``: a bool (thumbs up/down), a number (a rating) or a short label. ``source`` is
    ``human``, ``code`` or ``llm_judge``; ``user`` identifies who gave it (the assessment's
    source id). A later feedback with the same name, source and user overrides this one.
    Raises :class:`FeedbackError` for an unknown id or an unusable name/value.
    """
    checked = Score(
        name=check_name(name),
        value=check_value(value),
        source=check_source(source),
        source_id=(user or "").strip()[:250] or "unknown",
        rationale=(rationale or "").strip()[:5000] or None,
        metadata={Quality.META_ORIGIN: Quality.ORIGIN_FEEDBACK},
    )
    client, tracing = _clients(tracking_uri)
    target = resolve(client, tracing, str(ref))  # type: ignore[arg-type]
    return write_score(client, tracing, target, checked)  # type: ignore[arg-type]
