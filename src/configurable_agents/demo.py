"""``make demo``: the whole product in one command, offline.

Runs the article writer a few times on prompt version 1.0.0 and 2.0.0 with the
demo model (priced as the configured gemini-2.5-flash, tagged ``demo_model``),
logging to ``sqlite:///mlflow.db`` in the current directory through one shared
MLflow handler, then reads the runs back from MLflow and prints them, with the
command that opens the MLflow UI on them. Then it evaluates the QA assistant v1.0.0
and v2.0.0 on ``examples/qa_dataset.jsonl`` and prints their quality compare
(accuracy and cost deltas with paired-bootstrap intervals).

    python -m configurable_agents.demo [--runs 3] [--tracking-uri sqlite:///mlflow.db]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from configurable_agents.commands.quiet import quiet_third_party, stdout_is_ours
from configurable_agents.config.schema import (
    DEFAULT_TRACKING_URI,
    MLFlowConfig,
    ObservabilityConfig,
)
from configurable_agents.config.workflow import WorkflowConfig, load_workflow
from configurable_agents.names import Param
from configurable_agents.runtime.executor import WorkflowResult, run_workflow_from_config

EXPERIMENT = "article_writer"
WORKFLOW_FILES = ("article_writer.yaml", "article_writer_v2.yaml")
QA_EXPERIMENT = "qa_assistant"
QA_FILES = ("qa_assistant.yaml", "qa_assistant_v2.yaml")
QA_DATASET = "qa_dataset.jsonl"
TOPICS = (
    "AI agents in healthcare",
    "Observability for LLM applications",
    "Small language models on the edge",
    "Retrieval-augmented generation",
    "Prompt versioning in production",
)

# Wide enough for the run table when piped (rich assumes 80 columns off a terminal).
console = Console(width=None if sys.stdout.isatty() else 140)


def examples_dir() -> Path:
    """``examples/`` of a source checkout (the package's repo, else the cwd)."""
    for candidate in (Path(__file__).resolve().parents[2] / "examples", Path.cwd() / "examples"):
        if (candidate / WORKFLOW_FILES[0]).is_file():
            return candidate
    raise FileNotFoundError(
        "examples/article_writer.yaml not found; run the demo from a source checkout"
    )


def _with_store(workflow: WorkflowConfig, tracking_uri: str, experiment: str) -> WorkflowConfig:
    base = workflow.config.mlflow or MLFlowConfig()
    mlflow_cfg = base.model_copy(
        update={"enabled": True, "tracking_uri": tracking_uri, "experiment_name": experiment}
    )
    config = workflow.config.model_copy(
        update={"observability": ObservabilityConfig(mlflow=mlflow_cfg)}
    )
    return workflow.model_copy(update={"config": config})


def run_demo(
    tracking_uri: str = DEFAULT_TRACKING_URI,
    experiment: str = EXPERIMENT,
    runs: int = 3,
    examples: Path | None = None,
) -> list[WorkflowResult]:
    """Run every example version ``runs`` times through one shared handler."""
    from configurable_agents.observability import MLflowCallbackHandler
    from configurable_agents.runtime.summary import SummarySink

    folder = examples or examples_dir()
    workflows = [
        _with_store(load_workflow(folder / name), tracking_uri, experiment)
        for name in WORKFLOW_FILES
    ]
    first = workflows[0]
    assert first.config.mlflow is not None
    handler = MLflowCallbackHandler(
        first.config.mlflow,
        workflow_name=first.flow.name,
        workflow_version=first.flow.version,
        params={
            Param.GLOBAL_MODEL: first.llm.model,
            Param.GLOBAL_TEMPERATURE: first.llm.temperature,
        },
        sinks=[SummarySink()],  # each run's summary from its facts (see runtime/summary.py)
    )
    results = []
    try:
        for workflow in workflows:
            for i in range(runs):
                topic = TOPICS[i % len(TOPICS)]
                with console.status(f"{workflow.flow.name} {workflow.flow.version}: {topic}"):
                    results.append(
                        run_workflow_from_config(
                            workflow,
                            {"topic": topic},
                            handler=handler,
                            demo=True,
                            metadata={"user_id": "demo-user", "team": "docs"},
                        )
                    )
    finally:
        handler.close()
    return results


def print_reports(tracking_uri: str, experiment: str) -> None:
    """The two reports a user reaches for after a run: cost by version, and v1 vs v2."""
    from configurable_agents.reports import render
    from configurable_agents.reports.reporting import compare_runs, cost_report

    console.print(
        f"\n[bold]$ configurable-agents report costs --experiment {experiment} "
        "--group-by workflow_version[/bold]", soft_wrap=True
    )
    report = cost_report(["workflow_version"], tracking_uri=tracking_uri, experiments=[experiment])
    render.print_cost_report(report, console)
    console.print(
        f"\n[bold]$ configurable-agents report compare --experiment {experiment} "
        "--baseline \"params.workflow_version = '1.0.0'\" "
        "--candidate \"params.workflow_version = '2.0.0'\"[/bold]", soft_wrap=True
    )
    comparison = compare_runs(
        "params.workflow_version = '1.0.0'",
        "params.workflow_version = '2.0.0'",
        tracking_uri=tracking_uri,
        experiments=[experiment],
    )
    render.print_comparison(comparison, console)


def run_evaluations(tracking_uri: str, examples: Path | None = None) -> list[str]:
    """Evaluate QA v1.0.0 and v2.0.0 on the shipped dataset; their evaluation run ids."""
    from configurable_agents.evaluation.workflow_eval import evaluate_workflow
    from configurable_agents.scoring import Contains

    folder = examples or examples_dir()
    run_ids = []
    for name in QA_FILES:
        # stdout_is_ours: MLflow prints an "Evaluation completed" banner on stdout.
        with console.status(f"evaluating {name} on {QA_DATASET}"), stdout_is_ours():
            result = evaluate_workflow(folder / name, folder / QA_DATASET, [Contains()],
                                       demo=True, tracking_uri=tracking_uri,
                                       experiment=QA_EXPERIMENT, register_prompts=True)
        console.print(f"{name}: accuracy {result.accuracy:.0%}, cost per correct answer "
                      f"${result.cost_per_correct_usd or 0:.6f} (evaluation run {result.run_id})",
                      highlight=False)
        run_ids.append(result.run_id)
    return run_ids


def print_quality_compare(tracking_uri: str, run_ids: list[str]) -> None:
    from configurable_agents.reports.quality import compare_evaluations, print_quality

    console.print(f"\n[bold]$ configurable-agents report compare --experiment {QA_EXPERIMENT} "
                  f"--baseline {run_ids[0]} --candidate {run_ids[1]}[/bold] (quality part)",
                  soft_wrap=True)
    quality = compare_evaluations(run_ids[0], run_ids[1], tracking_uri=tracking_uri,
                                  experiments=[QA_EXPERIMENT])
    if quality is not None:
        print_quality(quality, console)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m configurable_agents.demo")
    parser.add_argument("--runs", type=int, default=3, help="runs per workflow version")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI)
    parser.add_argument("--experiment", default=EXPERIMENT)
    parser.add_argument("--no-eval", dest="eval", action="store_false",
                        help="skip the QA evaluation of v1.0.0 vs v2.0.0")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show MLflow's logs, warnings and progress bars")
    args = parser.parse_args(argv)
    quiet_third_party(args.verbose)
    console.print(
        f"Running the article writer v1.0.0 and v2.0.0 x{args.runs} on the offline demo model "
        f"(priced as gemini-2.5-flash, tagged demo_model=true) -> {args.tracking_uri}",
        soft_wrap=True,
    )
    results = run_demo(args.tracking_uri, args.experiment, args.runs)
    failed = [r for r in results if r.summary is None]
    print_reports(args.tracking_uri, args.experiment)
    if args.eval:
        print_quality_compare(args.tracking_uri, run_evaluations(args.tracking_uri))
    backend = args.tracking_uri
    console.print("\nOpen the MLflow UI on these runs (then http://127.0.0.1:5000) with:")
    console.print(f"  make ui    # or: .venv/bin/mlflow ui --backend-store-uri {backend}",
                  highlight=False, soft_wrap=True)
    if failed:
        console.print(f"[red]{len(failed)} run(s) have no MLflow summary[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
