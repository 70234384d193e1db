"""``evaluate(app, dataset, scorers=...)``: run every example, score it, log one evaluation run.

Each example is an ordinary invocation through the MLflow handler (so it gets its
parent run, nested runs, tokens, cost and trace like any other), tagged with the
evaluation run's id; the evaluation run carries the summary metrics, the dataset as an
MLflow dataset input, the per-example table and, through ``mlflow.genai.evaluate``, a
score assessment on every example's trace.

Once written, the example runs (and the judge's runs) are nested under the evaluation run
(``mlflow.parentRunId``): MLflow's runs list then shows the evaluation runs at the top
level, each with its examples collapsed beneath it, instead of one row per example.

It writes through an ``MlflowClient`` on the handler's tracking URI and leaves the app's
MLflow state alone (global tracking URI, active experiment and run: see
mlflow_state.py); the evaluation run goes to the experiment the handler resolves for
the evaluation's ``metadata`` (a ``{tenant_id}`` template per tenant, judge runs
included); everything it writes passes through the handler's redactor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import uuid4

from langchain_core.runnables import Runnable
from mlflow import MlflowClient
from mlflow.entities import Param as MlflowParam

from configurable_agents.evaluation import experiments, mlflow_logging, prompts, versions
from configurable_agents.evaluation.dataset import Dataset, load_dataset
from configurable_agents.evaluation.mlflow_state import run_in_fluent_scope
from configurable_agents.evaluation.results import (
    EvaluationResult,
    ExampleResult,
    summary_metrics,
)
from configurable_agents.names import (
    PRICING_UNKNOWN,
    EvalMetric,
    EvalRole,
    EvalTag,
    Kind,
    Metric,
    Param,
    Tag,
)
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.scoring import (
    Contains,
    Example,
    Score,
    Scorer,
    as_scorer,
    extract_output,
)

Invoke = Callable[[dict[str, Any], dict[str, Any]], Any]  # (inputs, RunnableConfig) -> output
_CA_TAGS = "ca_tags"  # invocation metadata key whose dict becomes parent-run tags
EXPORT_WAIT_S = 300.0  # how long to wait for the example runs to be written


class EvaluationError(RuntimeError):
    """An evaluation that cannot start (bad dataset, no MLflow)."""


def _invoker(app: Runnable[Any, Any] | Invoke) -> Invoke:
    if isinstance(app, Runnable):
        return lambda inputs, config: app.invoke(inputs, config)  # type: ignore[arg-type]
    return app


_WORKFLOW_KEYS = frozenset({"workflow_name", "workflow_version", "ca_params", "ca_metrics",
                            "ca_artifacts", _CA_TAGS})


def _judge_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k not in _WORKFLOW_KEYS}


def _merge_metadata(base: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, Any]:
    merged = dict(base)
    merged[_CA_TAGS] = {**dict(base.get(_CA_TAGS) or {}), **tags}
    return merged


def _score_all(
    scorers: Sequence[Scorer], example: Example, output: Any, config: dict[str, Any]
) -> dict[str, Score]:
    scores: dict[str, Score] = {}
    for scorer in scorers:
        try:
            scores[scorer.name] = scorer.score(example, output, config)
        except Exception as exc:  # a scorer bug scores 0 and says why; the run goes on
            scores[scorer.name] = Score(0.0, f"scorer failed: {type(exc).__name__}: {exc}")
    return scores


def evaluate(
    app: Runnable[Any, Any] | Invoke,
    dataset: Dataset | str,
    scorers: Sequence[Scorer | Callable[..., Any]] = (),
    *,
    handler: MLflowCallbackHandler | None = None,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    workflow_name: str | None = None,
    workflow_version: str | None = None,
    output_key: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    link_model: bool = True,
    prompt_versions: Sequence[Any] = (),
) -> EvaluationResult:
    """Evaluate a LangGraph app, any Runnable or a ``fn(inputs, config)`` on a dataset.

    ``scorers`` default to ``[Contains()]``; the first decides correctness. With no
    ``handler``, one is made from ``tracking_uri`` / ``experiment_name``; a handler you
    pass is flushed, not closed. ``link_model`` maps (workflow, version) to an MLflow
    LoggedModel and links the runs to it (the Agent versions page).
    """
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    scorer_list = [as_scorer(s) for s in scorers] or [Contains()]
    names = [s.name for s in scorer_list]
    if len(set(names)) != len(names):
        raise EvaluationError(f"scorer names must be unique, got {names}")
    owned = handler is None
    if handler is None:
        handler = MLflowCallbackHandler(
            {"enabled": True, "tracking_uri": tracking_uri or "sqlite:///mlflow.db",
             "experiment_name": experiment_name or "configurable_agents"},
            workflow_name=workflow_name, workflow_version=workflow_version,
        )
    try:
        return _evaluate(app, data, scorer_list, handler, workflow_name, workflow_version,
                         output_key, dict(metadata or {}), run_name, link_model,
                         prompt_versions)
    finally:
        if owned:
            handler.close()


def _evaluate(
    app: Runnable[Any, Any] | Invoke,
    data: Dataset,
    scorers: list[Scorer],
    handler: MLflowCallbackHandler,
    workflow_name: str | None,
    workflow_version: str | None,
    output_key: str | None,
    metadata: dict[str, Any],
    run_name: str | None,
    link_model: bool,
    prompt_versions: Sequence[Any],
) -> EvaluationResult:
    config = handler.config
    if not config.enabled:
        raise EvaluationError("evaluation needs MLflow: set observability.mlflow.enabled: true")
    try:  # the experiment the example runs go to: a tenant template resolved, never literal
        client, experiment_id = experiments.experiment_for(handler, metadata)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    redact = handler.redact
    name = workflow_name or handler.workflow_name or getattr(app, "name", None) or "app"
    version = workflow_version or handler.workflow_version or ""
    model_id = None
    if link_model and version:
        model_id = versions.ensure_logged_model(client, experiment_id, redact(name),
                                                redact(version))
    invoke = _invoker(app)
    judge_handler = None
    if any(getattr(s, "uses_model", False) for s in scorers):
        # The evaluation's MLflow block and pipeline settings (redaction above all: the
        # judge's prompts hold the example's inputs and answer), no other sink.
        judge_config = handler.observability.model_copy(
            update={"prometheus": None, "jsonl": None, "otel": None, "online_eval": None})
        judge_handler = MLflowCallbackHandler(judge_config, workflow_name=f"{name}_judge",
                                              workflow_version=version or None)
    run = client.create_run(
        experiment_id,
        run_name=redact(run_name or f"eval {name} {version} on {data.name}".strip()),
        tags={Tag.KIND: Kind.EVALUATION, Tag.WORKFLOW_NAME: redact(name),
              Tag.WORKFLOW_VERSION: redact(version), EvalTag.EVAL_DATASET: redact(data.name),
              EvalTag.EVAL_DATASET_DIGEST: data.digest,
              EvalTag.EVAL_PRIMARY_SCORER: scorers[0].name},
    )
    eval_run_id = run.info.run_id
    status = "FAILED"
    try:
        client.log_batch(eval_run_id, params=[
            MlflowParam(Param.WORKFLOW_NAME, redact(name)),
            MlflowParam(Param.WORKFLOW_VERSION, redact(version)),
            MlflowParam("dataset", redact(data.name)),
            MlflowParam("scorers", ",".join(s.name for s in scorers))])
        results = _run_examples(invoke, data, scorers, handler, judge_handler, metadata,
                                eval_run_id, output_key, name, model_id)
        notes: list[str] = []
        if not _read_back(client, handler, results):
            notes.append(f"some example runs were not written within {EXPORT_WAIT_S:.0f} s; "
                         "their cost, trace and assessments are missing")
        judge_runs = _judge_runs(client, judge_handler, eval_run_id, experiment_id)
        judge_cost = None if judge_handler is None else sum(
            r.data.metrics.get(Metric.TOTAL_COST_USD, 0.0) for r in judge_runs)
        mlflow_logging.nest_runs(client, eval_run_id,
                                 [*(r.run_id for r in results if r.run_id),
                                  *(r.info.run_id for r in judge_runs)])
        metrics = summary_metrics(results)
        if judge_cost is not None:
            metrics[EvalMetric.JUDGE_COST_USD] = judge_cost
        try:
            mlflow_logging.log_with_mlflow_genai(client, eval_run_id, experiment_id, data,
                                                 results, [s.name for s in scorers], model_id,
                                                 redact)
        except Exception as exc:  # the metrics and table below still record the result
            notes.append(f"mlflow.genai.evaluate failed: {type(exc).__name__}: {exc}")
            mlflow_logging.log_dataset(client, eval_run_id, data, redact)
        for key, value in metrics.items():
            client.log_metric(eval_run_id, key, value, model_id=model_id)
        mlflow_logging.log_table(client, eval_run_id, results, redact)
        run_ids = [r.run_id for r in results if r.run_id]
        if model_id:
            versions.link_runs(client, model_id, run_ids)
        if prompt_versions:  # MLflow's registry finds the run through the global store
            run_in_fluent_scope(
                lambda: prompts.link_prompts(client, [eval_run_id, *run_ids],
                                             list(prompt_versions)),
                client.tracking_uri, experiment_id)
        status = "FINISHED"
    finally:
        client.set_terminated(eval_run_id, status)
    return EvaluationResult(run_id=eval_run_id, experiment_id=experiment_id,
                            dataset=data, examples=results, metrics=metrics,
                            model_id=model_id, judge_cost_usd=judge_cost, notes=notes)


def _run_examples(
    invoke: Invoke, data: Dataset, scorers: list[Scorer], handler: MLflowCallbackHandler,
    judge_handler: MLflowCallbackHandler | None, metadata: dict[str, Any], eval_run_id: str,
    output_key: str | None, name: str, model_id: str | None,
) -> list[ExampleResult]:
    results: list[ExampleResult] = []
    for example in data.examples:
        root_id = uuid4()
        tags = {EvalTag.EVAL_RUN_ID: eval_run_id, EvalTag.EVAL_EXAMPLE_ID: example.id,
                EvalTag.EVAL_ROLE: EvalRole.EXAMPLE}
        example_tags = {**tags, **({EvalTag.LOGGED_MODEL_ID: model_id} if model_id else {})}
        run_config: dict[str, Any] = {
            "callbacks": [handler], "run_id": root_id, "run_name": name,
            "metadata": _merge_metadata(metadata, example_tags),
        }
        result = ExampleResult(id=example.id, inputs=example.inputs, expected=example.expected,
                               primary=scorers[0].name)
        started = time.perf_counter()
        try:
            raw = invoke(dict(example.inputs), run_config)
        except Exception as exc:  # an example that raises is an error, not a crash
            result.error = f"{type(exc).__name__}: {exc}"[:500]
            raw = None
        result.latency_s = time.perf_counter() - started
        result.run_id = str(root_id)  # replaced by the MLflow run id after flush
        if result.error is None:
            result.output = extract_output(raw, output_key)
            judge_config: dict[str, Any] = {
                "callbacks": [judge_handler] if judge_handler else [],
                # The caller's attribution (tenant_id, user_id...) so the judge's runs land
                # in the same tenant's experiment; not the app's workflow identity.
                "metadata": _merge_metadata(_judge_metadata(metadata),
                                            {**tags, EvalTag.EVAL_ROLE: EvalRole.JUDGE}),
            }
            result.scores = _score_all(scorers, example, result.output, judge_config)
        else:
            result.scores = {s.name: Score(0.0, "the example raised") for s in scorers}
        results.append(result)
    return results


def _read_back(client: MlflowClient, handler: MLflowCallbackHandler,
               results: list[ExampleResult]) -> bool:
    """Each example's MLflow run id, trace id and cost, as the handler logged them.

    Waits for every example run to be written (False if that took over EXPORT_WAIT_S):
    the metrics need their costs, and ``mlflow.genai.evaluate`` must not start while the
    handler's threads still write (MLflow's import hooks can deadlock with them).
    """
    written = handler.flush(timeout=max(handler.settings.flush_timeout_s, EXPORT_WAIT_S))
    for result in results:
        langchain_id = result.run_id or ""
        run_id = handler.run_id_for(langchain_id)
        result.run_id = run_id
        if run_id is None:
            continue
        run = client.get_run(run_id)
        result.trace_id = run.data.tags.get(Tag.TRACE_ID)
        if run.data.tags.get(Tag.PRICING) != PRICING_UNKNOWN:
            result.cost_usd = run.data.metrics.get(Metric.TOTAL_COST_USD)
    return written


def _judge_runs(client: MlflowClient, judge: MLflowCallbackHandler | None,
                eval_run_id: str, experiment_id: str) -> list[Any]:
    """The judge's parent runs of this evaluation (its calls, costed apart), once written."""
    if judge is None:
        return []
    judge.close(timeout=max(judge.settings.flush_timeout_s, EXPORT_WAIT_S))
    return list(client.search_runs(
        [experiment_id],
        filter_string=f"tags.{EvalTag.EVAL_RUN_ID} = '{eval_run_id}' and "
                      f"tags.{EvalTag.EVAL_ROLE} = '{EvalRole.JUDGE}'",
        max_results=10_000,
    ))
