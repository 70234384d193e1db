"""track_optimization: one DSPy optimizer run, its cost, and baseline vs optimized on the valset.

Three parent runs, linked by tags:

- ``<name>.baseline`` and ``<name>.optimized`` (kind ``evaluation``): ``dspy.Evaluate``
  of each program on the validation set; one nested run per example (tokens, cost,
  prompt and response), ``score`` and ``examples`` metrics, ``eval_results.json``;
- ``<name>`` (kind ``optimization``): the optimizer's ``compile``, one nested run per
  program call the optimizer makes (its trials, as DSPy reports them), so the run's
  ``total_cost_usd`` and tokens are those of the optimization itself; plus
  ``baseline_score``, ``optimized_score``, ``score_delta``, the optimized program in
  DSPy's own save format (``optimized_program.json``) and ``program_diff.md``, the
  instruction and demo changes per predictor.
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

from configurable_agents.names import Artifact, Metric, Tag
from configurable_agents.observability.capture.dspy_recorder import (
    KIND_EVALUATION,
    KIND_OPTIMIZATION,
    DspyRecorder,
)
from configurable_agents.observability.capture.records import WorkflowRecord

__all__ = ["OptimizationResult", "program_diff", "track_optimization"]


@dataclass(frozen=True, slots=True)
class OptimizationResult:
    """What :func:`track_optimization` returns; ids are the runs' ``langchain_run_id`` tags."""

    program: Any
    baseline_score: float
    optimized_score: float
    optimization_id: UUID
    baseline_id: UUID
    optimized_id: UUID


def track_optimization(
    optimizer: Any,
    program: Any,
    trainset: Sequence[Any],
    valset: Sequence[Any],
    metric: Callable[..., Any],
    *,
    callback: DspyRecorder | None = None,
    name: str | None = None,
    num_threads: int | None = None,
    compile_kwargs: Mapping[str, Any] | None = None,
) -> OptimizationResult:
    """Evaluate ``program``, optimize it with ``optimizer``, evaluate the result; log all three.

    ``callback`` is the :class:`~configurable_agents.observability.dspy_tracking.MLflowDSPyCallback`
    to log with (a new one from the environment's config when omitted). The optimizer's
    own exceptions propagate unchanged; the optimization run is then logged as FAILED.
    """
    if callback is None:
        from configurable_agents.observability.dspy_tracking import MLflowDSPyCallback

        callback = MLflowDSPyCallback()
    name = name or f"optimize.{type(program).__name__}"
    others = [c for c in (dspy.settings.get("callbacks") or []) if c is not callback]
    with dspy.context(callbacks=[*others, callback]):
        baseline_wf, baseline = _evaluate(
            callback, f"{name}.baseline", "baseline", program, valset, metric, num_threads
        )
        run = callback.begin_workflow(
            name,
            KIND_OPTIMIZATION,
            inputs={"trainset": len(trainset), "valset": len(valset)},
            metadata={
                "ca_params": _optimizer_params(optimizer, trainset, valset),
                "ca_tags": {Tag.DSPY_ROLE: "optimization",
                            Tag.DSPY_BASELINE_RUN: str(baseline_wf.run_id)},
            },
        )
        try:
            with callback.attach(run):
                optimized = optimizer.compile(program, trainset=list(trainset),
                                              **dict(compile_kwargs or {}))
            optimized_wf, tuned = _evaluate(
                callback, f"{name}.optimized", "optimized", optimized, valset, metric, num_threads,
                link=run,
            )
        except BaseException as exc:
            callback.end_workflow(run, error=exc)
            raise
        run.metadata["ca_tags"][Tag.DSPY_OPTIMIZED_RUN] = str(optimized_wf.run_id)
        run.metadata["ca_metrics"] = {
            Metric.BASELINE_SCORE: baseline,
            Metric.OPTIMIZED_SCORE: tuned,
            Metric.SCORE_DELTA: tuned - baseline,
        }
        run.metadata["ca_artifacts"] = {
            Artifact.OPTIMIZED_PROGRAM: _saved_program(optimized),
            Artifact.PROGRAM_DIFF: program_diff(program, optimized),
        }
        callback.end_workflow(
            run, outputs={Metric.BASELINE_SCORE: baseline, Metric.OPTIMIZED_SCORE: tuned}
        )
    return OptimizationResult(
        optimized, baseline, tuned, run.run_id, baseline_wf.run_id, optimized_wf.run_id
    )


def _evaluate(
    callback: DspyRecorder,
    name: str,
    role: str,
    program: Any,
    valset: Sequence[Any],
    metric: Callable[..., Any],
    num_threads: int | None,
    link: WorkflowRecord | None = None,
) -> tuple[WorkflowRecord, float]:
    """One evaluation run: Evaluate's examples become its nested runs."""
    tags = {Tag.DSPY_ROLE: role}
    if link is not None:
        tags[Tag.DSPY_OPTIMIZATION_RUN] = str(link.run_id)
    workflow = callback.begin_workflow(
        name, KIND_EVALUATION, inputs={"valset": len(valset)}, metadata={"ca_tags": tags}
    )
    evaluate = dspy.Evaluate(devset=list(valset), metric=metric, num_threads=num_threads)
    try:
        with callback.attach(workflow):
            result = evaluate(program)
    except BaseException as exc:
        callback.end_workflow(workflow, error=exc)
        raise
    score = float(result.score)
    rows = [
        {"inputs": dict(example.inputs()), "expected": _labels(example),
         "prediction": _as_dict(prediction), "score": _number(value)}
        for example, prediction, value in result.results
    ]
    workflow.metadata["ca_metrics"] = {Metric.SCORE: score, Metric.EXAMPLES: len(rows)}
    workflow.metadata["ca_artifacts"] = {Artifact.EVAL_RESULTS: rows}
    callback.end_workflow(workflow, outputs={Metric.SCORE: score})
    return workflow, score


def _labels(example: Any) -> dict[str, Any]:
    try:
        return dict(example.labels())
    except Exception:
        return {}


def _as_dict(prediction: Any) -> Any:
    to_dict = getattr(prediction, "toDict", None)
    return to_dict() if callable(to_dict) else prediction


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, int | float) else None


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
