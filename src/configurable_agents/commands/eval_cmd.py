"""``configurable-agents eval WORKFLOW.yaml --dataset FILE``: accuracy next to cost.

Errors are one line on stderr: exit 2 for a dataset or option that cannot be used
(the message names the line and field), 1 for everything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from configurable_agents.commands.options import (
    FORMAT,
    JSON_ALIAS,
    OUTPUT,
    Format,
    check_output,
    emit,
    printable,
    resolve_format,
    working,
)
from configurable_agents.commands.quiet import stdout_is_ours
from configurable_agents.names import EvalMetric

if TYPE_CHECKING:  # the evaluation stack imports MLflow: only inside the command
    from configurable_agents.evaluation.results import EvaluationResult

_SHOWN = (
    (EvalMetric.ACCURACY, "{:.1%}"),
    (EvalMetric.CORRECT, "{:.0f}"),
    (EvalMetric.EXAMPLES, "{:.0f}"),
    (EvalMetric.ERRORS, "{:.0f}"),
    (EvalMetric.UNSCORABLE, "{:.0f}"),
    (EvalMetric.TOTAL_COST_USD, "${:.6f}"),
    (EvalMetric.COST_PER_EXAMPLE_USD, "${:.6f}"),
    (EvalMetric.COST_PER_CORRECT_USD, "${:.6f}"),
    (EvalMetric.JUDGE_COST_USD, "${:.6f}"),
    (EvalMetric.LATENCY_MEAN_S, "{:.3f} s"),
    (EvalMetric.LATENCY_P95_S, "{:.3f} s"),
)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {printable(message)}", err=True)
    return typer.Exit(code=code)


def summary_table(result: EvaluationResult) -> Table:
    table = Table(title=f"Evaluation run {result.run_id} on {printable(result.dataset.name)} "
                        f"({result.dataset.digest})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, fmt in _SHOWN:
        if name in result.metrics:
            table.add_row(name, fmt.format(result.metrics[name]))
    for name, value in sorted(result.metrics.items()):
        if name.endswith("/mean"):
            table.add_row(printable(name), f"{value:.3f}")
    return table


def eval_command(
    workflow: Path = typer.Argument(..., help="Workflow YAML file."),
    dataset: Path = typer.Option(..., "--dataset", "-d",
                                 help="JSON Lines or CSV: inputs plus an 'expected' field."),
    scorer: list[str] | None = typer.Option(
        None, "--scorer", "-s", help="exact_match, contains, regex[:PATTERN], json_field:PATH, "
        "numeric[:TOL] (repeatable; the first decides correctness). Default: contains."),
    output_key: str | None = typer.Option(
        None, "--output-key", help="State field to score. Default: the last output field."),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri",
                                            help="Override the workflow's tracking URI."),
    experiment: str | None = typer.Option(None, "--experiment", "-e",
                                          help="Override the workflow's experiment."),
    demo: bool | None = typer.Option(None, "--demo/--no-demo",
                                     help="Use the offline demo model."),
    register_prompts: bool | None = typer.Option(
        None, "--register-prompts/--no-register-prompts",
        help="Register node prompts in MLflow's Prompt Registry (default: the config's "
        "observability.mlflow.register_prompts)."),
    judge: str | None = typer.Option(
        None, "--judge", help="Add an LLM judge, PROVIDER:MODEL (openai, anthropic, google, "
        "demo), e.g. openai:gpt-4o-mini. Without --scorer it decides correctness."),
    judge_base_url: str | None = typer.Option(
        None, "--judge-base-url", help="OpenAI-compatible endpoint for the judge (gateways)."),
    metadata: list[str] | None = typer.Option(
        None, "--metadata", "-m", help="KEY=VALUE added to every example's invocation "
        "metadata (repeatable), e.g. tenant_id=acme for a '{tenant_id}_qa' experiment."),
    fmt: Format = FORMAT,
    output: Path | None = OUTPUT,
    as_json: bool = JSON_ALIAS,
) -> None:
    """Run a workflow on every example of a dataset and log an MLflow evaluation run."""
    from configurable_agents.config.loader import ConfigError
    from configurable_agents.evaluation.dataset import DatasetError
    from configurable_agents.evaluation.runner import EvaluationError
    from configurable_agents.evaluation.workflow_eval import evaluate_workflow
    from configurable_agents.scoring import builtin

    fmt = resolve_format(fmt, as_json)
    check_output(output)
    try:
        default = [] if judge and not scorer else ["contains"]
        scorers = [builtin(spec) for spec in (scorer or default)]
    except ValueError as exc:
        raise _fail(f"--scorer: {exc}", 2) from None
    if judge:
        scorers.append(_judge(judge, judge_base_url))
    extra: dict[str, str] = {}
    for item in metadata or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _fail(f"--metadata {item!r}: use KEY=VALUE", 2)
        extra[key.strip()] = value
    try:
        # stdout_is_ours: MLflow prints an "Evaluation completed" banner on stdout; it is
        # dropped (sent to stderr with -v): stdout carries only the command's result.
        with working(f"evaluating {workflow.name} on {dataset.name}"), stdout_is_ours():
            result = evaluate_workflow(workflow, dataset, scorers, demo=demo,
                                       tracking_uri=tracking_uri, experiment=experiment,
                                       output_key=output_key,
                                       register_prompts=register_prompts, metadata=extra)
    except (DatasetError, EvaluationError) as exc:
        raise _fail(str(exc), 2) from None
    except ConfigError as exc:
        raise _fail(str(exc), 1) from None
    for note in result.notes:
        typer.echo(f"note: {printable(note)}", err=True)
    emit(fmt, output,
         data=lambda: {"run_id": result.run_id, "model_id": result.model_id,
                       "dataset": result.dataset.name, "digest": result.dataset.digest,
                       "metrics": result.metrics},
         table=lambda console: console.print(summary_table(result)))


def _judge(spec: str, base_url: str | None) -> Any:
    """An LLMJudge on ``PROVIDER:MODEL``; a bad spec or a missing package/key is exit 2."""
    from pydantic import ValidationError

    from configurable_agents.config.online_eval_config import JudgeConfig
    from configurable_agents.online_eval.scorers import judge_model
    from configurable_agents.runtime.providers import ProviderError
    from configurable_agents.scoring import LLMJudge

    provider, sep, model = spec.partition(":")
    if not sep or not model.strip():
        raise _fail(f"--judge {spec!r}: use PROVIDER:MODEL, e.g. openai:gpt-4o-mini", 2)
    try:
        config = JudgeConfig(provider=provider.strip().lower(), model=model.strip(),
                             base_url=base_url)
        return LLMJudge(judge_model(config))
    except ValidationError:
        raise _fail(f"--judge {spec!r}: provider must be openai, anthropic, google or demo",
                    2) from None
    except ProviderError as exc:
        raise _fail(f"--judge: {exc}", 2) from None


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
