"""Write one score: an MLflow assessment on the trace, then the parent run's summary of it.

The assessment is the record (who, what, why, when); MLflow's Traces view shows it. The run
metric is a summary for what reads *runs* (the runs list, run compare, ``report``): the mean
of the valid numeric assessments of that name on the trace, and their count. It is
recomputed from the trace after each write, so it always agrees with the assessments.

Overrides: a second score with the same name from the same source (source type and source
id, e.g. ``human`` / ``alice``) replaces the first: it is logged with ``overrides`` set to the
earlier assessment's id, which MLflow then marks invalid (the Traces view shows the history).
Scores from different sources are all kept and all count in the mean.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from configurable_agents.feedback.target import FeedbackTarget
from configurable_agents.feedback.values import FeedbackValue, numeric
from configurable_agents.names import Quality

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

_SOURCE_TYPES = {"human": "HUMAN", "code": "CODE", "llm_judge": "LLM_JUDGE"}


@dataclass(frozen=True, slots=True)
class Score:
    """One score to record (already checked by :mod:`.values`)."""

    name: str
    value: FeedbackValue
    source: str = "human"  # human | code | llm_judge
    source_id: str = "unknown"
    rationale: str | None = None
    metadata: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What was written: the assessment, what it replaced, and the run's summary now."""

    assessment_id: str
    trace_id: str
    run_id: str | None
    name: str
    value: FeedbackValue
    overrides: str | None
    run_metric: str | None
    run_mean: float | None
    run_count: int


def _same_source(assessment: Any, source_type: str, source_id: str) -> bool:
    source = assessment.source
    return (source is not None and str(source.source_type) == source_type
            and source.source_id == source_id)


def _valid_feedback(info: Any, name: str) -> list[Any]:
    from mlflow.entities import Feedback

    return [a for a in (info.assessments or [])
            if isinstance(a, Feedback) and a.name == name and a.valid is not False]


def write_score(client: MlflowClient, tracing: Any, target: FeedbackTarget, score: Score,
                metric_prefix: str = Quality.FEEDBACK_PREFIX) -> Recorded:
    """Record ``score`` on ``target``'s trace and summarise it on the parent run."""
    from mlflow.entities import AssessmentSource, Feedback

    source_type = _SOURCE_TYPES[score.source]
    before = _valid_feedback(tracing.get_trace_info(target.trace_id), score.name)
    previous = next((a for a in sorted(before, key=lambda a: a.create_time_ms or 0,
                                       reverse=True)
                     if _same_source(a, source_type, score.source_id)), None)
    feedback = Feedback(
        name=score.name,
        value=score.value,
        rationale=score.rationale or None,
        source=AssessmentSource(source_type=source_type, source_id=score.source_id),
        metadata=dict(score.metadata or {}),
        overrides=previous.assessment_id if previous is not None else None,
    )
    logged = tracing.log_assessment(target.trace_id, feedback)
    mean, count, metric = None, 0, None
    if target.run_id is not None:
        mean, count, metric = _summarise_on_run(client, tracing, target, score, metric_prefix)
    return Recorded(
        assessment_id=logged.assessment_id, trace_id=target.trace_id, run_id=target.run_id,
        name=score.name, value=score.value,
        overrides=previous.assessment_id if previous is not None else None,
        run_metric=metric, run_mean=mean, run_count=count)


def _summarise_on_run(client: MlflowClient, tracing: Any, target: FeedbackTarget, score: Score,
                      prefix: str) -> tuple[float | None, int, str | None]:
    from mlflow.entities import Metric, RunTag

    assert target.run_id is not None
    valid = _valid_feedback(tracing.get_trace_info(target.trace_id), score.name)
    numbers = [n for a in valid if (n := numeric(a.value)) is not None]
    now = int(time.time() * 1000)
    metric_name = f"{prefix}{score.name}"
    metrics, tags = [], []
    if numbers:
        mean = sum(numbers) / len(numbers)
        # MLflow shows a metric's latest step: one step per write keeps the history readable.
        step = int(now // 1000)
        metrics = [Metric(metric_name, mean, now, step),
                   Metric(metric_name + Quality.COUNT_SUFFIX, float(len(numbers)), now, step)]
    elif isinstance(score.value, str):
        tags = [RunTag(Quality.LABEL_TAG_PREFIX + score.name, score.value)]
    client.log_batch(target.run_id, metrics=metrics, tags=tags)
    if not numbers:
        return None, 0, None
    return sum(numbers) / len(numbers), len(numbers), metric_name
