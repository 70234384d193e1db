"""track_optimization end to end: a real BootstrapFewShot on a tiny dataset, real sqlite MLflow.

The baseline and optimized evaluations are evaluation runs of ``evaluate()`` (issue #20's
format), so ``report compare`` between them gives accuracy and cost with intervals.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from configurable_agents.cli import app as cli
from configurable_agents.names import (
    Artifact,
    DspyTag,
    EvalMetric,
    EvalTag,
    Kind,
    Metric,
    Param,
    Tag,
)
from configurable_agents.reports.quality import compare_evaluations
from tests.dspy_stub import COST_PER_CALL, USAGE, CapitalQA, exact_answer, qa_examples, reply
from tests.fake_provider_server import FakeProviderServer
from tests.test_dspy import make_callback, make_lm
from tests.test_handler_shapes import runs_of

import dspy  # isort: skip

from configurable_agents.evaluation.dspy_optimize import track_optimization  # isort: skip

VALSET = ["Japan", "Egypt", "Peru", "Kenya"]


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer().start()
    server.openai_usage = USAGE
    server.openai_reply = reply
    yield server
    server.stop()


def _country_calls(requests: list, country: str) -> int:
    """Provider requests whose last message asks about ``country`` (demos never do)."""
    return sum(f"capital of {country}?" in str((body.get("messages") or [{}])[-1].get("content"))
               for _, body in requests)


def test_bootstrap_fewshot_logs_cost_scores_program_and_diff(
    provider: FakeProviderServer, mlflow_store: str, mlflow_client: MlflowClient,
    experiment_name: str,
) -> None:
    callback = make_callback(mlflow_store, experiment_name)
    trainset = qa_examples(["France", "Italy", "Spain"])
    valset = qa_examples(VALSET)
    optimizer = dspy.BootstrapFewShot(metric=exact_answer, max_bootstrapped_demos=2,
                                      max_labeled_demos=2, max_rounds=1)
    calls_before = len(provider.requests)
    with dspy.context(lm=make_lm(provider)):
        result = track_optimization(optimizer, CapitalQA(), trainset, valset, exact_answer,
                                    callback=callback, name="capitals", num_threads=2)
    requests = provider.requests[calls_before:]
    assert result.baseline_score == 0.0
    assert result.optimized_score == 100.0
    assert result.program.answer.demos, "the optimizer's program is returned unchanged"
    assert callback.flush(30)

    # The two evaluations: evaluate()'s evaluation runs, accuracy and cost per correct answer.
    base, tuned = result.baseline, result.optimized
    assert (base.accuracy, tuned.accuracy) == (0.0, 1.0)
    for evaluation, role in ((base, "baseline"), (tuned, "optimized")):
        run = mlflow_client.get_run(evaluation.run_id)
        assert run.data.tags[Tag.KIND] == Kind.EVALUATION
        assert run.data.tags[DspyTag.ROLE] == role
        assert run.data.tags[Tag.WORKFLOW_VERSION] == role
        assert run.data.tags[DspyTag.OPTIMIZATION_RUN] == str(result.optimization_id)
        assert run.data.metrics[EvalMetric.EXAMPLES] == 4
        assert run.data.metrics[EvalMetric.ACCURACY] == evaluation.accuracy
        assert run.data.metrics[EvalMetric.TOTAL_COST_USD] == pytest.approx(8 * COST_PER_CALL)
    assert EvalMetric.COST_PER_CORRECT_USD not in base.metrics  # no correct answer
    assert mlflow_client.get_run(tuned.run_id).data.metrics[
        EvalMetric.COST_PER_CORRECT_USD] == pytest.approx(2 * COST_PER_CALL)

    # Each example run holds exactly its own LM calls (2 predictors), and the evaluation
    # totals are the sum of its example runs.
    countries = {e.id: c for e, c in zip(base.dataset.examples, VALSET, strict=True)}
    for evaluation in (base, tuned):
        examples = mlflow_client.search_runs(
            [evaluation.experiment_id],
            filter_string=f"tags.{EvalTag.EVAL_RUN_ID} = '{evaluation.run_id}'")
        assert len(examples) == 4
        total = 0.0
        for run in examples:
            calls = _country_calls(requests, countries[run.data.tags[EvalTag.EVAL_EXAMPLE_ID]])
            assert calls == 4, "draft + answer, once in each evaluation"
            assert run.data.tags[Tag.KIND] == Kind.WORKFLOW
            assert run.data.metrics[Metric.LLM_CALLS] == 2
            assert run.data.metrics[Metric.TOTAL_INPUT_TOKENS] == 2 * 120
            assert run.data.metrics[Metric.TOTAL_OUTPUT_TOKENS] == 2 * 30
            assert run.data.metrics[Metric.TOTAL_COST_USD] == pytest.approx(2 * COST_PER_CALL)
            total += run.data.metrics[Metric.TOTAL_COST_USD]
        assert evaluation.metrics[EvalMetric.TOTAL_COST_USD] == pytest.approx(total)

    # The optimization itself, as DSPy reports it: the inner LabeledFewShot compile that
    # builds the teacher, then the teacher's trials; it succeeds on the first two train
    # examples, which fills max_bootstrapped_demos: two trials of two calls each.
    parents, nodes = runs_of(mlflow_client, experiment_name)
    (opt,) = [p for p in parents if p.data.tags.get(DspyTag.ROLE) == "optimization"]
    steps = [n for n in nodes if n.data.tags.get(Tag.MLFLOW_PARENT_RUN_ID) == opt.info.run_id]
    assert sorted(n.data.params[Param.NODE_ID] for n in steps) == [
        "CapitalQA", "CapitalQA", "optimize.LabeledFewShot"]
    opt_calls = int(opt.data.metrics[Metric.LLM_CALLS])
    assert opt_calls == 4
    assert opt.data.metrics[Metric.TOTAL_INPUT_TOKENS] == opt_calls * 120
    assert opt.data.metrics[Metric.TOTAL_COST_USD] == pytest.approx(opt_calls * COST_PER_CALL)
    assert len(requests) == 8 + 8 + opt_calls, "every provider request is logged exactly once"
    assert opt.data.metrics[Metric.BASELINE_SCORE] == 0.0
    assert opt.data.metrics[Metric.OPTIMIZED_SCORE] == 100.0
    assert opt.data.metrics[Metric.SCORE_DELTA] == 100.0
    assert opt.data.params["optimizer"] == "BootstrapFewShot"
    assert opt.data.params["optimizer.max_labeled_demos"] == "2"
    assert opt.data.params[Param.GLOBAL_MODEL] == "gpt-4o"
    assert opt.data.tags[Tag.LANGCHAIN_RUN_ID] == str(result.optimization_id)
    assert opt.data.tags[DspyTag.BASELINE_EVAL_RUN] == base.run_id
    assert opt.data.tags[DspyTag.OPTIMIZED_EVAL_RUN] == tuned.run_id

    saved = mlflow_client.download_artifacts(opt.info.run_id, Artifact.OPTIMIZED_PROGRAM)
    reloaded = CapitalQA()
    reloaded.load(saved)
    assert len(reloaded.answer.demos) == len(result.program.answer.demos)
    diff = Path(mlflow_client.download_artifacts(
        opt.info.run_id, Artifact.PROGRAM_DIFF)).read_text(encoding="utf-8")
    assert "## Predictor `answer`" in diff
    assert f"### Demos: 0 -> {len(result.program.answer.demos)}" in diff
    assert "(new)" in diff and "Paris" in diff

    # Baseline vs optimized: quality and cost with paired-bootstrap intervals.
    quality = compare_evaluations(base.run_id, tuned.run_id, tracking_uri=mlflow_store,
                                  experiments=[experiment_name])
    assert quality is not None and quality.paired == 4
    assert quality.accuracy == (0.0, 1.0)
    assert quality.cost_per_correct == (None, pytest.approx(2 * COST_PER_CALL))
    assert quality.verdict == (
        "optimized: +0% cost [+0%, +0%], accuracy +100.0 pp [+100.0, +100.0]: "
        "significantly more accurate (95% CI, 4 paired examples)")
    args = ["report", "compare", "--tracking-uri", mlflow_store, "-e", experiment_name,
            "--baseline", base.run_id, "--candidate", tuned.run_id, "--format", "json"]
    shown = CliRunner().invoke(cli, args)
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["quality"]["verdict"] == quality.verdict
    assert data["quality"]["accuracy_delta_pp"] == {"estimate": 100.0, "low": 100.0,
                                                    "high": 100.0}
    assert data["baseline"]["stats"]["runs"] == 4  # the cost compare covers the example runs
    callback.close()


def test_optimizer_failure_is_logged_and_reraised(
    provider: FakeProviderServer, mlflow_store: str, mlflow_client: MlflowClient,
    experiment_name: str,
) -> None:
    callback = make_callback(mlflow_store, experiment_name)

    class Exploding(dspy.BootstrapFewShot):
        def compile(self, student, *, teacher=None, trainset):  # type: ignore[override]
            raise RuntimeError("optimizer broke")

    with dspy.context(lm=make_lm(provider)), pytest.raises(RuntimeError, match="optimizer broke"):
        track_optimization(Exploding(metric=exact_answer), CapitalQA(), qa_examples(["France"]),
                           qa_examples(["Italy"]), exact_answer, callback=callback)
    assert callback.flush(30)
    parents, _ = runs_of(mlflow_client, experiment_name)
    opt = next(p for p in parents if p.data.tags.get(DspyTag.ROLE) == "optimization")
    assert opt.info.status == "FAILED"
    assert opt.data.tags[Tag.ERROR_TYPE] == "RuntimeError"
    callback.close()


def test_example_runs_offline_and_logs_the_three_runs(
    mlflow_store: str, mlflow_client: MlflowClient, experiment_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "dspy_optimize.py"
    spec = importlib.util.spec_from_file_location("dspy_optimize_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(mlflow_store, experiment_name)
    assert (result.baseline_score, result.optimized_score) == (0.0, 100.0)
    printed = capsys.readouterr().out
    assert "optimized: " in printed and "significantly more accurate" in printed
    print(printed)
    parents, _ = runs_of(mlflow_client, experiment_name)
    opt = next(p for p in parents if p.data.tags.get(DspyTag.ROLE) == "optimization")
    calls = opt.data.metrics[Metric.LLM_CALLS]
    assert calls > 0
    assert opt.data.metrics[Metric.TOTAL_COST_USD] == pytest.approx(calls * COST_PER_CALL)
    print(f"optimization run: {calls:.0f} calls, "
          f"{opt.data.metrics[Metric.TOTAL_INPUT_TOKENS]:.0f} in / "
          f"{opt.data.metrics[Metric.TOTAL_OUTPUT_TOKENS]:.0f} out tokens, "
          f"${opt.data.metrics[Metric.TOTAL_COST_USD]:.6f}; "
          f"score {opt.data.metrics[Metric.BASELINE_SCORE]} -> "
          f"{opt.data.metrics[Metric.OPTIMIZED_SCORE]}")


def test_valset_becomes_a_dataset_with_stable_ids() -> None:
    from configurable_agents.evaluation.dspy_adapters import dspy_dataset

    valset = qa_examples(["Japan", "Egypt", "Japan"])
    dataset, originals = dspy_dataset(valset, "capitals.valset")
    reordered, _ = dspy_dataset(list(reversed(valset)), "capitals.valset")
    ids = [e.id for e in dataset.examples]
    assert ids[2] == f"{ids[0]}-2", "a repeated example gets its own id"
    assert {e.id for e in reordered.examples} == set(ids), "ids do not depend on the order"
    first = dataset.examples[0]
    assert first.inputs == {"question": "What is the capital of Japan?"}
    assert first.expected == {"answer": "Tokyo"}
    assert originals[first.id] is valset[0]
    with pytest.raises(ValueError, match=r"valset example 1: .*with_inputs"):
        dspy_dataset([dspy.Example(question="q", answer="a")], "bad")


def test_metric_passes_as_dspy_counts_it() -> None:
    from configurable_agents.evaluation.dspy_adapters import DspyMetricScorer, dspy_dataset

    dataset, originals = dspy_dataset(qa_examples(["Japan", "Egypt"]), "v")
    tokyo, cairo = dataset.examples

    def overlap(example: dspy.Example, prediction: dspy.Prediction) -> float:
        return 0.4 if prediction.answer in example.answer else 0.0

    truthy = DspyMetricScorer(overlap, originals)
    assert truthy.name == "overlap"
    assert truthy.score(tokyo, dspy.Prediction(answer="Tok"), {}).correct  # 0.4 is truthy
    assert not truthy.score(cairo, dspy.Prediction(answer="Lima"), {}).correct
    assert truthy.dspy_score([tokyo.id, cairo.id]) == 20.0  # Evaluate's mean x 100
    strict = DspyMetricScorer(overlap, originals, threshold=0.5)
    assert not strict.score(tokyo, dspy.Prediction(answer="Tok"), {}).correct
    broken = DspyMetricScorer(lambda example, prediction: "yes", originals, name="broken")
    with pytest.raises(TypeError, match="return a bool or a number"):
        broken.score(tokyo, dspy.Prediction(answer="Tokyo"), {})
