"""Workflow versions as MLflow LoggedModels, so MLflow's "Agent versions" page lists them.

One external LoggedModel per (workflow, version) and experiment, found again by its
tags on the next evaluation rather than created twice; runs are linked to it as
model inputs, and evaluation metrics are logged against it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import LoggedModelInput

from configurable_agents.names import Param, Tag

MODEL_TYPE = "agent"


_FORBIDDEN = str.maketrans({c: "-" for c in "/:.%\"'"})


def model_name(workflow: str, version: str) -> str:
    """``qa_assistant-v1-0-0``: MLflow refuses '.', '/', ':' and quotes in model names."""
    return (f"{workflow}-v{version}" if version else workflow).translate(_FORBIDDEN)


def ensure_logged_model(client: MlflowClient, experiment_id: str, workflow: str,
                        version: str) -> str:
    """The model id of (workflow, version) in this experiment; created on first use.

    Made as ``mlflow.create_external_model`` makes one (external tag, MLmodel spec,
    READY), but through ``client``: never MLflow's global tracking URI.
    """
    name = model_name(workflow, version)
    found = client.search_logged_models(
        experiment_ids=[experiment_id],
        filter_string=f"name = '{name}'",
        max_results=1,
    )
    if found:
        return found[0].model_id
    from mlflow.entities import LoggedModelStatus
    from mlflow.models.model import MLMODEL_FILE_NAME
    from mlflow.models.utils import get_external_mlflow_model_spec
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_IS_EXTERNAL

    model = client.create_logged_model(
        experiment_id=experiment_id,
        name=name,
        model_type=MODEL_TYPE,
        tags={Tag.WORKFLOW_NAME: workflow, Tag.WORKFLOW_VERSION: version,
              MLFLOW_MODEL_IS_EXTERNAL: "true"},
        params={Param.WORKFLOW_NAME: workflow, Param.WORKFLOW_VERSION: version},
    )
    with tempfile.TemporaryDirectory() as tmp:
        get_external_mlflow_model_spec(model).save(str(Path(tmp) / MLMODEL_FILE_NAME))
        client.log_model_artifacts(model.model_id, tmp)
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return model.model_id


def link_runs(client: MlflowClient, model_id: str, run_ids: Iterable[str]) -> None:
    """Record the model as an input of each run (the run page's "Logged models")."""
    for run_id in run_ids:
        client.log_inputs(run_id, models=[LoggedModelInput(model_id=model_id)])
