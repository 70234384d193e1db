"""Evaluate a workflow YAML on a dataset: what ``configurable-agents eval`` runs.

The workflow is built once and invoked per example with the same metadata the runner
gives a normal run (params, ``demo_model`` tag), so an example's run is a normal run.
Every example's inputs are checked against the workflow's state before the first one
runs: a dataset that does not fit fails in a second, naming the example and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from configurable_agents.config.schema import MLFlowConfig, ObservabilityConfig
from configurable_agents.config.workflow import WorkflowConfig, load_workflow
from configurable_agents.evaluation import experiments
from configurable_agents.evaluation.dataset import Dataset, DatasetError, load_dataset
from configurable_agents.evaluation.mlflow_state import run_in_fluent_scope
from configurable_agents.evaluation.prompts import register_workflow_prompts
from configurable_agents.evaluation.results import EvaluationResult
from configurable_agents.evaluation.runner import EvaluationError, evaluate
from configurable_agents.names import Param
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.runtime.executor import (
    WorkflowInputError,
    build_graph,
    invocation_metadata,
    prepare_inputs,
)
from configurable_agents.runtime.providers import default_factory, demo_requested
from configurable_agents.scoring import Scorer


def mlflow_config(workflow: WorkflowConfig, tracking_uri: str | None,
                  experiment: str | None) -> MLFlowConfig:
    """The workflow's MLflow block, switched on, with the command line's overrides."""
    base = workflow.config.mlflow or MLFlowConfig()
    update: dict[str, Any] = {"enabled": True}
    if tracking_uri:
        update["tracking_uri"] = tracking_uri
    if experiment:
        update["experiment_name"] = experiment
    return base.model_copy(update=update)


def observability_config(workflow: WorkflowConfig, mlflow: MLFlowConfig) -> ObservabilityConfig:
    """The workflow's whole observability block, as ``run`` uses it, for its evaluation.

    The pipeline settings (redaction, pricing, tags, sampling...) and every enabled sink
    apply to the example runs as to any run; ``mlflow`` is the block from
    :func:`mlflow_config` (switched on, the command line's overrides). Online evaluation
    is left out: the evaluation scores each example itself, and scoring it twice would
    double the judge's calls.
    """
    base = workflow.config.observability or ObservabilityConfig()
    return base.model_copy(update={"mlflow": mlflow, "online_eval": None})


def _register_prompts(handler: MLflowCallbackHandler, flow: WorkflowConfig,
                      metadata: Mapping[str, Any]) -> list[Any]:
    """Register the node prompts, listed under the evaluation's experiment.

    MLflow lists a prompt under the experiment that is active when it is registered, so
    the call runs in a fluent scope that restores the app's MLflow state afterwards.
    """
    try:
        client, experiment_id = experiments.experiment_for(handler, metadata)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    return run_in_fluent_scope(
        lambda: register_workflow_prompts(client, flow, handler.redact),
        client.tracking_uri, experiment_id)


def check_inputs(workflow: WorkflowConfig, dataset: Dataset) -> None:
    for example in dataset.examples:
        try:
            prepare_inputs(workflow, example.inputs)
        except WorkflowInputError as exc:
            raise DatasetError(f"{dataset.source or dataset.name} example {example.id!r}: "
                               f"field 'inputs': {exc}") from None


def evaluate_workflow(
    workflow: WorkflowConfig | str | Path,
    dataset: Dataset | str | Path,
    scorers: Sequence[Scorer] = (),
    *,
    demo: bool | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    output_key: str | None = None,
    register_prompts: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> EvaluationResult:
    """Run the workflow on every example and log one evaluation run (see :func:`evaluate`).

    ``metadata`` is added to every example's invocation metadata (e.g. ``tenant_id`` for
    a ``{tenant_id}_qa`` experiment); the workflow's own keys win.
    """
    flow = workflow if isinstance(workflow, WorkflowConfig) else load_workflow(workflow)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    check_inputs(flow, data)
    use_demo = demo_requested(demo)
    execution = flow.config.execution
    app = build_graph(flow, default_factory(demo=use_demo,
                                            timeout=execution.timeout if execution else None))
    config = mlflow_config(flow, tracking_uri, experiment)
    observability = observability_config(flow, config)
    demo_tag = use_demo or any(flow.node_llm(n).provider == "demo" for n in flow.nodes)
    run_metadata = {**dict(metadata or {}), **invocation_metadata(flow, demo=demo_tag)}
    handler = MLflowCallbackHandler(
        observability, workflow_name=flow.flow.name, workflow_version=flow.flow.version,
        params={Param.GLOBAL_MODEL: flow.llm.model,
                Param.GLOBAL_TEMPERATURE: flow.llm.temperature},
    )
    try:
        prompt_versions: list[Any] = []
        if config.register_prompts if register_prompts is None else register_prompts:
            prompt_versions = _register_prompts(handler, flow, run_metadata)
        return evaluate(
            lambda inputs, run_config: app.invoke(prepare_inputs(flow, inputs), run_config),
            data, scorers, handler=handler,
            workflow_name=flow.flow.name, workflow_version=flow.flow.version,
            output_key=output_key or (flow.output_fields[-1] if flow.output_fields else None),
            metadata=run_metadata,
            prompt_versions=prompt_versions,
        )
    finally:
        handler.close()
