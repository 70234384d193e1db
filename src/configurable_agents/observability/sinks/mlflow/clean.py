"""Clean a RunPlan to what MLflow accepts, just before it is written (live, retry or replay).

One workflow MLflow refuses must never look like "MLflow is down": so keys are
mapped to MLflow's rules (:func:`~.keys.mlflow_key`), values are cut to
MLflow's limits and made encodable, ``mlflow.``-prefixed tags are refused unless
listed in :data:`ALLOWED_MLFLOW_TAGS` (they are MLflow's own controls: a forged
``mlflow.parentRunId`` would attach runs anywhere), and artifact names become
safe relative names (:func:`~.keys.safe_artifact_name`) or are dropped.
The mapping is documented in docs/features/reliability.md ("Names MLflow accepts").
"""

from __future__ import annotations

from dataclasses import replace

from configurable_agents.observability.diagnostics import Diagnostics
from configurable_agents.observability.sinks.mlflow.keys import (
    MAX_TAG_VALUE,
    mlflow_key,
    safe_artifact_name,
)
from configurable_agents.observability.sinks.run_plan import RunPlan

MAX_PARAM_VALUE = 6000  # MLflow's limits
MAX_RUN_NAME = 250
MLFLOW_PREFIX = "mlflow."
#: ``mlflow.``-prefixed tags a plan may carry (the run's description in the UI).
ALLOWED_MLFLOW_TAGS = frozenset({"mlflow.note.content"})

_STATUSES = frozenset({"RUNNING", "FINISHED", "FAILED", "KILLED", "SCHEDULED"})

# One bounded log-once set for the process (writers on several threads share it).
_diagnostics = Diagnostics(max_kinds=64)
_warn_once = _diagnostics.warn_once


def text(value: object, limit: int | None = None) -> str:
    """A string any store can hold: lone surrogates and NUL replaced, cut to ``limit``."""
    try:
        out = value if isinstance(value, str) else str(value)
    except Exception:
        out = f"<unprintable {type(value).__name__}>"
    out = out.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return out[:limit] if limit is not None else out


def clean_plan(plan: RunPlan) -> RunPlan:
    """A copy of ``plan`` (and its children) that MLflow will accept."""
    params = {mlflow_key(text(k)): text(v, MAX_PARAM_VALUE) for k, v in plan.params.items()}
    metrics: dict[str, float] = {}
    for key, value in plan.metrics.items():
        number = _number(value)
        if number is not None:
            metrics[mlflow_key(text(key))] = number
    tags: dict[str, str] = {}
    for key, value in plan.tags.items():
        name = mlflow_key(text(key))
        if name.startswith(MLFLOW_PREFIX) and name not in ALLOWED_MLFLOW_TAGS:
            _warn_once(f"tag:{name}", "tag %r refused: mlflow.* tags are MLflow's own", name)
            continue
        tags[name] = text(value, MAX_TAG_VALUE)
    artifacts: dict[str, str] = {}
    for name, body in plan.artifacts.items():
        safe = safe_artifact_name(name)
        if safe is None:
            _warn_once(f"artifact:{text(name, 80)}", "artifact name %r refused: it is not a "
                       "relative file name inside the run", text(name, 80))
            continue
        artifacts[safe] = text(body)
    return replace(
        plan,
        run_name=text(plan.run_name, MAX_RUN_NAME),
        start_ms=max(0, int(plan.start_ms)),
        end_ms=max(0, int(plan.start_ms), int(plan.end_ms)),
        status=plan.status if plan.status in _STATUSES else "FAILED",
        params=params,
        metrics=metrics,
        tags=tags,
        artifacts=artifacts,
        children=[clean_plan(child) for child in plan.children],
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number  # NaN and infinities are valid MLflow metric values
