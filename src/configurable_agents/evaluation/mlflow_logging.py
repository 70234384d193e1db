"""Writing an evaluation into MLflow: with an ``MlflowClient``, and MLflow's own machinery.

The examples already ran as ordinary workflow runs, each with its trace. We hand those
traces to ``mlflow.genai.evaluate`` with one MLflow scorer per scorer of ours, which
returns the score we already computed: MLflow then links the traces to the evaluation
run, records each score as an assessment on its trace, logs ``<scorer>/mean`` and marks
the run as a GenAI evaluation, so it appears in the Evaluation runs view. Scores are
computed once by us (not by MLflow) so that an LLM judge is called, and paid for, once.

Everything else goes through the client bound to the handler's tracking URI, never
MLflow's global state (see mlflow_state.py for the one fluent call). Every text written
here (table cells, expectations, rationales, dataset identity) passes through the
handler's redactor first (``redact``): the same one its runs and traces get.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, Feedback

from configurable_agents.evaluation.dataset import Dataset
from configurable_agents.evaluation.mlflow_state import run_in_fluent_scope
from configurable_agents.evaluation.redacting import redact_row, redact_value
from configurable_agents.evaluation.results import ExampleResult
from configurable_agents.names import Artifact, Tag

log = logging.getLogger(__name__)
# mlflow.genai imports LiteLLM, which fetches a price map over the network at import time
# (and retries for ~10 s when offline); its bundled copy is enough for us.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

EXPECTATION = "expected_response"  # the expectation name MLflow's built-in judges read
_IDENTITY_ATTR = "mlflow.genaiEvaluate.datasetIdentity"  # mlflow.utils.mlflow_tags
Redact = Callable[[str], str]


def dataset_frame(dataset: Dataset, redact: Redact) -> pd.DataFrame:
    return pd.DataFrame(
        [{"id": e.id, "inputs": redact_value(e.inputs, redact),
          "expected": redact_value(e.expected, redact)} for e in dataset.examples]
    )


def mlflow_dataset(dataset: Dataset, redact: Redact) -> Any:
    """The dataset as an MLflow dataset: its name, digest and source fill the Dataset column."""
    frame = dataset_frame(dataset, redact).assign(inputs=lambda f: f["inputs"].map(json.dumps))
    return mlflow.data.from_pandas(
        frame, source=redact(dataset.source) or None, name=redact(dataset.name),
        digest=dataset.digest,
    )


def log_dataset(client: MlflowClient, run_id: str, dataset: Dataset, redact: Redact) -> None:
    entity = mlflow_dataset(dataset, redact)._to_mlflow_entity()
    client.log_inputs(run_id, datasets=[DatasetInput(dataset=entity)])


def _identity(dataset: Dataset, frame: pd.DataFrame, redact: Redact) -> dict[str, Any]:
    """Tell ``mlflow.genai.evaluate`` which dataset these rows are (else it logs 'dataset')."""
    from mlflow.genai.datasets.evaluation_dataset import compute_records_sha256

    entity = mlflow_dataset(dataset, redact)._to_mlflow_entity()
    return {
        "records_sha256": compute_records_sha256(frame),
        "name": entity.name,
        "digest": entity.digest,
        "source_type": entity.source_type,
        "source": entity.source,
        "schema": entity.schema,
        "profile": entity.profile,
    }


def _replayed_scorer(name: str, by_trace: dict[str, ExampleResult], redact: Redact) -> Any:
    from mlflow.genai.scorers import scorer as mlflow_scorer

    def replay(trace: Any) -> Feedback:
        result = by_trace[trace.info.trace_id]
        score = result.scores[name]
        return Feedback(value=score.value, rationale=redact(score.rationale) or None)

    return mlflow_scorer(replay, name=name)


def log_with_mlflow_genai(
    client: MlflowClient,
    run_id: str,
    experiment_id: str,
    dataset: Dataset,
    examples: Sequence[ExampleResult],
    scorer_names: Sequence[str],
    model_id: str | None,
    redact: Redact,
) -> bool:
    """Run ``mlflow.genai.evaluate`` over the examples' traces, into run ``run_id``.

    False (and the dataset logged the plain way) when no example has a trace.
    """
    by_trace = {e.trace_id: e for e in examples if e.trace_id and e.error is None}
    rows = []
    for trace_id, result in by_trace.items():
        trace = client.get_trace(trace_id)
        rows.append({"trace": trace,
                     "expectations": {EXPECTATION: redact_value(result.expected, redact)}})
    if not rows:
        log_dataset(client, run_id, dataset, redact)
        return False
    frame = pd.DataFrame(rows)
    try:
        frame.attrs[_IDENTITY_ATTR] = _identity(dataset, frame, redact)
    except Exception:  # an MLflow without dataset identities: it logs the rows as 'dataset'
        log.debug("could not name the dataset for mlflow.genai.evaluate", exc_info=True)
    scorers = [_replayed_scorer(name, by_trace, redact) for name in scorer_names]

    def call() -> None:
        with mlflow.start_run(run_id=run_id):
            mlflow.genai.evaluate(data=frame, scorers=scorers, model_id=model_id)

    run_in_fluent_scope(call, client.tracking_uri, experiment_id)
    return True


def log_table(client: MlflowClient, run_id: str, examples: Sequence[ExampleResult],
              redact: Redact) -> None:
    """The per-example table, viewable in the run's artifacts (and read by ``report``)."""
    rows = [redact_row(e.row(), redact) for e in examples]
    if rows:
        client.log_table(run_id, data=pd.DataFrame(rows), artifact_file=Artifact.EVAL_RESULTS)


def nest_runs(client: MlflowClient, parent_run_id: str, run_ids: Sequence[str]) -> None:
    """Show ``run_ids`` (example and judge runs) nested under the evaluation run.

    MLflow's runs list groups a run under the one its ``mlflow.parentRunId`` names (and
    hides it until that row is expanded), so the experiment's top-level rows are its
    evaluation runs. Set after the runs are written: callers' tags can never set
    ``mlflow.*`` (the handler drops them), and only the evaluation knows its own run.
    """
    for run_id in dict.fromkeys(run_ids):
        if run_id != parent_run_id:
            client.set_tag(run_id, Tag.MLFLOW_PARENT_RUN_ID, parent_run_id)
