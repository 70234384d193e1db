"""track_optimization end to end: a real BootstrapFewShot on a tiny dataset, real sqlite MLflow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from configurable_agents.names import Artifact, Metric, Param, Tag
from tests.dspy_stub import COST_PER_CALL, USAGE, CapitalQA, exact_answer, qa_examples, reply
from tests.fake_provider_server import FakeProviderServer
from tests.test_dspy import make_callback, make_lm
from tests.test_handler_shapes import runs_of

import dspy  # isort: skip

from configurable_agents.observability.dspy_optimize import track_optimization  # isort: skip


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer().start()
    server.openai_usage = USAGE
    server.openai_reply = reply
    yield server
    server.stop()


def test_bootstrap_fewshot_logs_cost_scores_program_and_diff(
    provider: FakeProviderServer, mlflow_store: str, mlflow_client: MlflowClient,
    experiment_name: str,
) -> None:
    callback = make_callback(mlflow_store, experiment_name)
    trainset = qa_examples(["France", "Italy", "Spain"])
    valset = qa_examples(["Japan", "Egypt", "Peru", "Kenya"])
    optimizer = dspy.BootstrapFewShot(metric=exact_answer, max_bootstrapped_demos=2,
                                      max_labeled_demos=2, max_rounds=1)
    calls_before = len(provider.requests)
    with dspy.context(lm=make_lm(provider)):
        result = track_optimization(optimizer, CapitalQA(), trainset, valset, exact_answer,
                                    callback=callback, name="capitals", num_threads=2)
    requests = len(provider.requests) - calls_before
    assert result.baseline_score == 0.0
    assert result.optimized_score == 100.0
    assert result.program.answer.demos, "the optimizer's program is returned unchanged"
    assert callback.flush(30)

    parents, nodes = runs_of(mlflow_client, experiment_name)
    by_role = {p.data.tags[Tag.DSPY_ROLE]: p for p in parents}
    assert set(by_role) == {"baseline", "optimized", "optimization"}
    base, tuned, opt = by_role["baseline"], by_role["optimized"], by_role["optimization"]

    # Evaluations: 4 examples x 2 predictor calls each, score as DSPy reports it.
    for run, score in ((base, 0.0), (tuned, 100.0)):
        assert run.data.metrics[Metric.SCORE] == score
        assert run.data.metrics[Metric.EXAMPLES] == 4
        assert run.data.metrics[Metric.LLM_CALLS] == 8
        assert run.data.metrics[Metric.TOTAL_COST_USD] == pytest.approx(8 * COST_PER_CALL)
        rows = json.loads(Path(mlflow_client.download_artifacts(
            run.info.run_id, Artifact.EVAL_RESULTS)).read_text(encoding="utf-8"))
        assert len(rows) == 4 and {r["score"] for r in rows} == {score / 100}

    # The optimization itself, as DSPy reports it: the inner LabeledFewShot compile that
    # builds the teacher, then the teacher's trials; it succeeds on the first two train
    # examples, which fills max_bootstrapped_demos: two trials of two calls each.
    steps = [n for n in nodes if n.data.tags.get(Tag.MLFLOW_PARENT_RUN_ID) == opt.info.run_id]
    assert sorted(n.data.params[Param.NODE_ID] for n in steps) == [
        "CapitalQA", "CapitalQA", "optimize.LabeledFewShot"]
    opt_calls = int(opt.data.metrics[Metric.LLM_CALLS])
    assert opt_calls == 4
    assert opt.data.metrics[Metric.TOTAL_INPUT_TOKENS] == opt_calls * 120
    assert opt.data.metrics[Metric.TOTAL_COST_USD] == pytest.approx(opt_calls * COST_PER_CALL)
    assert requests == 8 + 8 + opt_calls, "every provider request is logged exactly once"
    assert opt.data.metrics[Metric.BASELINE_SCORE] == 0.0
    assert opt.data.metrics[Metric.OPTIMIZED_SCORE] == 100.0
    assert opt.data.metrics[Metric.SCORE_DELTA] == 100.0
    assert opt.data.params["optimizer"] == "BootstrapFewShot"
    assert opt.data.params["optimizer.max_labeled_demos"] == "2"
    assert opt.data.params[Param.GLOBAL_MODEL] == "gpt-4o"
    assert opt.data.tags[Tag.DSPY_BASELINE_RUN] == base.data.tags[Tag.LANGCHAIN_RUN_ID]
    assert opt.data.tags[Tag.DSPY_OPTIMIZED_RUN] == tuned.data.tags[Tag.LANGCHAIN_RUN_ID]

    saved = mlflow_client.download_artifacts(opt.info.run_id, Artifact.OPTIMIZED_PROGRAM)
    reloaded = CapitalQA()
    reloaded.load(saved)
    assert len(reloaded.answer.demos) == len(result.program.answer.demos)
    diff = Path(mlflow_client.download_artifacts(
        opt.info.run_id, Artifact.PROGRAM_DIFF)).read_text(encoding="utf-8")
    assert "## Predictor `answer`" in diff
    assert f"### Demos: 0 -> {len(result.program.answer.demos)}" in diff
    assert "(new)" in diff and "Paris" in diff
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
    opt = next(p for p in parents if p.data.tags[Tag.DSPY_ROLE] == "optimization")
    assert opt.info.status == "FAILED"
    assert opt.data.tags[Tag.ERROR_TYPE] == "RuntimeError"
    callback.close()


def test_example_runs_offline_and_logs_the_three_runs(
    mlflow_store: str, mlflow_client: MlflowClient, experiment_name: str,
) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "dspy_optimize.py"
    spec = importlib.util.spec_from_file_location("dspy_optimize_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(mlflow_store, experiment_name)
    assert (result.baseline_score, result.optimized_score) == (0.0, 100.0)
    parents, _ = runs_of(mlflow_client, experiment_name)
    opt = next(p for p in parents if p.data.tags[Tag.DSPY_ROLE] == "optimization")
    calls = opt.data.metrics[Metric.LLM_CALLS]
    assert calls > 0
    assert opt.data.metrics[Metric.TOTAL_COST_USD] == pytest.approx(calls * COST_PER_CALL)
    print(f"optimization run: {calls:.0f} calls, "
          f"{opt.data.metrics[Metric.TOTAL_INPUT_TOKENS]:.0f} in / "
          f"{opt.data.metrics[Metric.TOTAL_OUTPUT_TOKENS]:.0f} out tokens, "
          f"${opt.data.metrics[Metric.TOTAL_COST_USD]:.6f}; "
          f"score {opt.data.metrics[Metric.BASELINE_SCORE]} -> "
          f"{opt.data.metrics[Metric.OPTIMIZED_SCORE]}")
