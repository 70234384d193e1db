"""Calling MLflow's fluent-only APIs without changing the calling app's MLflow state.

``evaluate()`` writes through an ``MlflowClient`` bound to the handler's tracking URI and
never calls ``mlflow.set_tracking_uri`` / ``mlflow.set_experiment`` for the app. Two
MLflow features exist only in the fluent API: ``mlflow.genai.evaluate`` (which links the
traces to the evaluation run, records assessments and marks the run as a GenAI
evaluation; it takes neither a tracking URI nor a run id, only MLflow's active ones) and
the Prompt Registry's "listed under the active experiment". For those calls only,
:func:`run_in_fluent_scope`:

- runs the call on a short-lived thread of its own, so MLflow's per-thread state of the
  app's thread (active run stack, last active run, last logged model, active model
  context) is never touched;
- holds a process-wide lock, points MLflow's process-wide tracking URI and active
  experiment at the evaluation's, and afterwards restores exactly what was there (the
  module values and the ``MLFLOW_TRACKING_URI`` / ``MLFLOW_EXPERIMENT_ID`` /
  ``MLFLOW_EXPERIMENT_NAME`` environment variables, set or unset).

What remains shared: while that call runs (a fraction of a second per evaluation),
*another* thread of the app calling MLflow's fluent API without a tracking URI of its
own would see the evaluation's. Apps that evaluate while other threads log through the
fluent API should give those threads an explicit ``MlflowClient(tracking_uri)``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import mlflow
from mlflow.tracking import _tracking_service, fluent

T = TypeVar("T")
_LOCK = threading.Lock()
_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")


@contextmanager
def _borrowed(tracking_uri: str, experiment_id: str) -> Iterator[None]:
    utils: Any = _tracking_service.utils
    with _LOCK:
        saved_uri = utils._tracking_uri
        saved_experiment = fluent._active_experiment_id
        saved_env = {name: os.environ.get(name) for name in _ENV}
        try:
            mlflow.set_tracking_uri(tracking_uri)
            fluent._active_experiment_id = experiment_id
            yield
        finally:
            mlflow.set_tracking_uri(saved_uri)  # None unsets it, as it was
            fluent._active_experiment_id = saved_experiment
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def run_in_fluent_scope(fn: Callable[[], T], tracking_uri: str, experiment_id: str) -> T:
    """``fn()`` with MLflow's fluent API pointed at ``tracking_uri`` / ``experiment_id``."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            with _borrowed(tracking_uri, experiment_id):
                outcome["value"] = fn()
        except BaseException as exc:  # re-raised on the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="configurable-agents-mlflow-fluent",
                              daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
