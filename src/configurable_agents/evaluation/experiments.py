"""The experiment an evaluation writes to, resolved and created as the handler does it.

A ``{tenant_id}`` template resolves from the evaluation's metadata, per tenant (never a
literal ``{tenant_id}_qa``); a new experiment on a sqlite store keeps its artifacts
beside the database, not in ``./mlruns`` of the current directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.tracking.artifacts import default_artifact_location
from configurable_agents.tracking.uri import prepare_tracking_uri


def experiment_id(client: MlflowClient, tracking_uri: str, name: str) -> str:
    """The experiment's id; created beside a sqlite database when it does not exist."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(
                name, artifact_location=default_artifact_location(tracking_uri, name))
        except MlflowException:  # created meanwhile by the handler or another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def experiment_for(handler: MLflowCallbackHandler,
                   metadata: Mapping[str, Any]) -> tuple[MlflowClient, str]:
    """A client on the handler's tracking URI and the experiment id for ``metadata``.

    ValueError names the template and the missing or unsafe metadata field.
    """
    try:
        name = handler.experiment_name_for(metadata)
    except ValueError as exc:
        raise ValueError(f"experiment_name {handler.config.experiment_name!r}: {exc}; pass "
                         "it in the evaluation's metadata (eval --metadata KEY=VALUE)") from None
    tracking_uri = prepare_tracking_uri(handler.config.tracking_uri)
    # Registry too: by default MLflow resolves it from the *global* tracking URI.
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    return client, experiment_id(client, tracking_uri, name)
