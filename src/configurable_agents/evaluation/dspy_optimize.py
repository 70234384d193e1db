"""track_optimization: one DSPy optimizer run, its cost, and baseline vs optimized on the valset.

Three parent runs, linked by tags (:class:`~configurable_agents.names.DspyTag`):

- ``<name>.baseline`` and ``<name>.optimized``: evaluation runs made by
  :func:`configurable_agents.evaluation.evaluate` (kind ``evaluation``, workflow version
  ``baseline`` / ``optimized``): one workflow run per valset example holding that
  example's DSPy LM calls (tokens, cost, trace), accuracy and cost per correct answer by
  the DSPy metric, the per-example table; so ``configurable-agents report compare``
  between them gives the accuracy and cost deltas with paired-bootstrap intervals;
- ``<name>`` (kind ``optimization``): the optimizer's ``compile``, one nested run per
  program call the optimizer makes (its trials, as DSPy reports them), so the run's
  ``total_cost_usd`` and tokens are those of the optimization itself; plus
  ``baseline_score``, ``optimized_score``, ``score_delta`` (DSPy's 0-100 scale), the
  optimized program in DSPy's own save format (``optimized_program.json``) and
  ``program_diff.md``, the instruction and demo changes per predictor.
"""

from __future__ import annotations

import difflib
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import dspy
from mlflow import MlflowClient

from configurable_agents.evaluation.dspy_adapters import DspyMetricScorer, dspy_app, dspy_dataset
from configurable_agents.evaluation.results import EvaluationResult
from configurable_agents.evaluation.runner import evaluate
from configurable_agents.names import Artifact, DspyTag, Metric
from configurable_agents.observability.dspy_tracking import KIND_OPTIMIZATION, MLflowDSPyCallback

__all__ = ["OptimizationResult", "program_diff", "track_optimization"]


@dataclass(frozen=True, slots=True)
class OptimizationResult:
    """What :func:`track_optimization` returns.

    ``optimization_id`` is the optimization run's ``langchain_run_id`` tag; ``baseline``
    and ``optimized`` are the two evaluations (``.run_id`` is the MLflow run id to give
    ``report compare``); the scores are DSPy's 0-100 metric means.
    """

    program: Any
    baseline_score: float
    optimized_score: float
    optimization_id: UUID
    baseline: EvaluationResult
    optimized: EvaluationResult


def track_optimization(
    optimizer: Any,
    program: Any,
    trainset: Sequence[Any],
    valset: Sequence[Any],
    metric: Callable[..., Any],
    *,
    callback: MLflowDSPyCallback | None = None,
    name: str | None = None,
    num_threads: int | None = None,
    compile_kwargs: Mapping[str, Any] | None = None,
    metric_threshold: float | None = None,
) -> OptimizationResult:
    """Evaluate ``program``, optimize it with ``optimizer``, evaluate the result; log all three.

    ``callback`` is the :class:`~configurable_agents.observability.dspy_tracking.MLflowDSPyCallback`
    to log with (a new one from the environment's config when omitted); its MLflow
    config must be enabled (the evaluations are MLflow evaluation runs). An example is
    correct when ``metric`` passes as DSPy optimizers count it: at least
    ``metric_threshold`` (default: the optimizer's own ``metric_threshold``), else truthy.
    The evaluations run the examples one after the other (``num_threads`` is accepted for
    compatibility and unused). The optimizer's own exceptions propagate unchanged; the
    optimization run is then logged as FAILED.
    """
    del num_threads  # evaluate() runs examples sequentially
    if callback is None:
        callback = MLflowDSPyCallback()
    name = name or f"optimize.{type(program).__name__}"
    if metric_threshold is None:
        metric_threshold = getattr(optimizer, "metric_threshold", None)
    dataset, originals = dspy_dataset(valset, f"{name}.valset")
    others = [c for c in (dspy.settings.get("callbacks") or []) if c is not callback]
    with dspy.context(callbacks=[*others, callback]):
        baseline = _evaluate(callback, name, "baseline", program, dataset, originals, metric,
                             metric_threshold)
        run = callback.begin_workflow(
            name,
            KIND_OPTIMIZATION,
            inputs={"trainset": len(trainset), "valset": len(valset)},
            metadata={
                "ca_params": _optimizer_params(optimizer, trainset, valset),
                "ca_tags": {DspyTag.ROLE: "optimization",
                            DspyTag.BASELINE_EVAL_RUN: baseline[0].run_id},
            },
        )
        try:
            with callback.attach(run):
                optimized = optimizer.compile(program, trainset=list(trainset),
                                              **dict(compile_kwargs or {}))
            tuned = _evaluate(callback, name, "optimized", optimized, dataset, originals,
                              metric, metric_threshold)
        except BaseException as exc:
            callback.end_workflow(run, error=exc)
            raise
        client = MlflowClient(callback.handler.config.tracking_uri)
        for evaluation, _ in (baseline, tuned):
            client.set_tag(evaluation.run_id, DspyTag.OPTIMIZATION_RUN, str(run.run_id))
        run.metadata["ca_tags"][DspyTag.OPTIMIZED_EVAL_RUN] = tuned[0].run_id
        scores = {Metric.BASELINE_SCORE: baseline[1], Metric.OPTIMIZED_SCORE: tuned[1]}
        run.metadata["ca_metrics"] = {**scores, Metric.SCORE_DELTA: tuned[1] - baseline[1]}
        run.metadata["ca_artifacts"] = {
            Artifact.OPTIMIZED_PROGRAM: _saved_program(optimized),
            Artifact.PROGRAM_DIFF: program_diff(program, optimized),
        }
        callback.end_workflow(run, outputs=scores)
    return OptimizationResult(optimized, baseline[1], tuned[1], run.run_id, baseline[0],
                              tuned[0])


def _evaluate(
    callback: MLflowDSPyCallback,
    name: str,
    role: str,
    program: Any,
    dataset: Any,
    originals: dict[str, Any],
    metric: Callable[..., Any],
    threshold: float | None,
) -> tuple[EvaluationResult, float]:
    """One evaluation run of ``program`` on the valset, and DSPy's 0-100 score of it."""
    scorer = DspyMetricScorer(metric, originals, threshold)
    result = evaluate(
        dspy_app(program, name), dataset, [scorer], handler=callback.handler,
        workflow_name=name, workflow_version=role, run_name=f"{name}.{role}",
        link_model=False,
    )
    MlflowClient(callback.handler.config.tracking_uri).set_tag(result.run_id, DspyTag.ROLE, role)
    return result, scorer.dspy_score([e.id for e in dataset.examples])


def _as_dict(prediction: Any) -> Any:
    to_dict = getattr(prediction, "toDict", None)
    return to_dict() if callable(to_dict) else prediction


def _optimizer_params(optimizer: Any, trainset: Sequence[Any], valset: Sequence[Any]) -> dict:
    """The optimizer's class and its scalar settings (max_bootstrapped_demos, ...)."""
    params: dict[str, Any] = {"optimizer": type(optimizer).__name__,
                              "trainset_size": len(trainset), "valset_size": len(valset)}
    for key, value in vars(optimizer).items():
        if not key.startswith("_") and isinstance(value, bool | int | float | str):
            params[f"optimizer.{key}"] = value
    return params


def _saved_program(program: Any) -> str:
    """The program as DSPy's ``save(path.json)`` writes it (state only, loadable with ``load``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "program.json"
        program.save(str(path))
        return path.read_text(encoding="utf-8")


def program_diff(baseline: Any, optimized: Any) -> str:
    """Markdown: per predictor, the instruction diff and the demos the optimizer added."""
    before = dict(baseline.named_predictors())
    lines = ["# Program changes: baseline -> optimized", ""]
    for name, predictor in optimized.named_predictors():
        old = before.get(name)
        new_instructions = str(predictor.signature.instructions)
        old_instructions = str(old.signature.instructions) if old is not None else ""
        lines += [f"## Predictor `{name}`", "", "### Instructions", ""]
        if new_instructions == old_instructions:
            lines += ["(unchanged)", "", "```text", new_instructions, "```", ""]
        else:
            diff = difflib.unified_diff(
                old_instructions.splitlines(), new_instructions.splitlines(),
                "baseline", "optimized", lineterm="",
            )
            lines += ["```diff", *diff, "```", ""]
        old_demos = [_demo_text(d) for d in (old.demos if old is not None else [])]
        new_demos = [_demo_text(d) for d in predictor.demos]
        lines += [f"### Demos: {len(old_demos)} -> {len(new_demos)}", ""]
        for i, demo in enumerate(new_demos, 1):
            mark = "" if demo in old_demos else " (new)"
            lines += [f"{i}.{mark}", "", "```json", demo, "```", ""]
        removed = [d for d in old_demos if d not in new_demos]
        for demo in removed:
            lines += ["- removed:", "", "```json", demo, "```", ""]
    return "\n".join(lines)


def _demo_text(demo: Any) -> str:
    data = _as_dict(demo)
    try:
        return json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(data)
