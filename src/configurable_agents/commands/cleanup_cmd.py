"""``configurable-agents cleanup``: retention deletes and closing stale RUNNING runs.

Wired as a top-level command: ``app.command("cleanup")(cleanup_cmd.cleanup)`` in
``cli.py``. The module's own one-command ``app`` exists so tests can drive it alone.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from configurable_agents.config import ConfigError, GlobalConfig, MLFlowConfig
from configurable_agents.config.loader import (
    apply_env_overrides,
    format_validation_error,
    load_global_config,
)
from configurable_agents.config.schema import DEFAULT_TRACKING_URI, redact_uri, resolved_mlflow
from configurable_agents.reports.retention import (
    DEFAULT_STALE_AFTER_MINUTES,
    CleanupPlan,
    CleanupSummary,
    ProgressFn,
    RetentionError,
    StaleSummary,
    apply_cleanup,
    check_older_than_days,
    check_purge_supported,
    check_stale_after_minutes,
    close_stale_runs,
    plan_cleanup,
    summarize_plan,
)

app = typer.Typer(help="Delete old workflow runs; close runs a dead process left RUNNING.")

_err = Console(stderr=True, highlight=False)
DRY_RUN_LIST_LIMIT = 20


def _fail(message: str, code: int = 1) -> typer.Exit:
    # Plain echo: rich would read '[...]' in names as markup and wrap long lines.
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=code)


def _settings(config: Path | None) -> MLFlowConfig:
    """The MLflow block from ``--config`` (or just the environment), env overrides applied."""
    loaded = load_global_config(config) if config else apply_env_overrides(GlobalConfig())
    return resolved_mlflow(loaded)


def _tracking_uri(explicit: str | None, settings: MLFlowConfig) -> str:
    """``--tracking-uri``, else the config's, else ``MLFLOW_TRACKING_URI``, else the default."""
    if explicit is not None:
        try:
            return MLFlowConfig.model_validate({"tracking_uri": explicit}).tracking_uri
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source="--tracking-uri")) from None
    if "tracking_uri" in settings.model_fields_set:
        return settings.tracking_uri
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


@contextmanager
def _progress_bar() -> Iterator[ProgressFn]:
    """A rich bar on stderr (only on a terminal: logs and cron output stay clean)."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
        disable=not _err.is_terminal,
    )
    tasks: dict[str, int] = {}

    def update(phase: str, done: int, total: int | None) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase, total=total)
        progress.update(tasks[phase], completed=done, total=total)

    with progress:
        yield update


def _print_plan(plan: CleanupPlan) -> None:
    for experiment in plan.experiments:
        shown = experiment.trees[:DRY_RUN_LIST_LIMIT]
        for tree in shown:
            root = tree.root
            typer.echo(
                f"  would delete {root.run_id}  {_when(root.start_time)}  {root.status:<8} "
                f"{root.run_name} (+{len(tree.nested)} nested)"
            )
        if len(experiment.trees) > len(shown):
            typer.echo(f"  ... and {len(experiment.trees) - len(shown)} more in {experiment.name}")


def _print_cleanup(summary: CleanupSummary) -> None:
    verb = "would delete" if summary.dry_run else "deleted"
    typer.echo(
        f"Retention cleanup at {summary.tracking_uri}: workflow runs started before "
        f"{_when(summary.cutoff_ms)} (older than {summary.older_than_days:g} days)"
        + (" [dry run: nothing changed]" if summary.dry_run else "")
    )
    for e in summary.experiments:
        line = (
            f"  {e.name}: {e.matched} workflow runs matched ({e.runs_matched} with nested), "
            f"{e.runs_matched if summary.dry_run else e.deleted} {verb}"
        )
        if summary.purge:
            line += f", {e.runs_matched if summary.dry_run else e.purged} " + (
                "would be purged" if summary.dry_run else "purged"
            )
        if summary.delete_traces and e.traces_matched:
            line += f", {e.traces_matched if summary.dry_run else e.traces_deleted} traces " + (
                "would be deleted" if summary.dry_run else "deleted"
            )
        if e.skipped_running:
            line += f"; {e.skipped_running} RUNNING skipped (--include-running, or --stale)"
        other = e.other_runs_text()
        if other:
            line += f"; {other}"
        typer.echo(line)
    total = summary.runs_matched if summary.dry_run else summary.deleted
    purged = summary.runs_matched if summary.dry_run else summary.purged
    traces = ""
    if summary.traces_matched and summary.delete_traces:
        count = summary.traces_matched if summary.dry_run else summary.traces_deleted
        traces = f", {count} traces {verb}"
    elif summary.traces_matched:
        traces = f"; {summary.traces_matched} traces kept (--keep-traces)"
    typer.echo(
        f"Total: {summary.matched} workflow runs matched, {summary.runs_matched} runs, "
        f"{total} {verb}" + (f", {purged} purged" if summary.purge else "") + traces + "."
    )


def _print_stale(summary: StaleSummary) -> None:
    typer.echo(
        f"Stale runs at {summary.tracking_uri} (RUNNING with a dead process, or no heartbeat "
        f"for {summary.stale_after_minutes:g} min)"
        + (" [dry run: nothing changed]" if summary.dry_run else "")
    )
    verb = "would mark KILLED" if summary.dry_run else "marked KILLED"
    for e in summary.experiments:
        typer.echo(f"  {e.name}: {e.running_checked} RUNNING workflow runs, {len(e.stale)} stale")
        for run in e.stale:
            typer.echo(
                f"    {run.run_id}  {run.run_name}  started {_when(run.start_time)}: "
                f"{run.reason}; {verb} (+{len(run.nested_running)} nested)"
            )
    closed = "" if summary.dry_run else f", {summary.closed} runs closed"
    typer.echo(f"Total: {summary.stale_count} stale workflow runs{closed}.")


def _confirm(plan: CleanupPlan, purge: bool, delete_traces: bool) -> bool:
    names = ", ".join(e.name for e in plan.experiments)
    action = "Permanently delete (purge)" if purge else "Delete"
    traces = sum(len(e.trace_ids) for e in plan.experiments) if delete_traces else 0
    also = f", and permanently delete their {traces} traces," if traces else ""
    return typer.confirm(
        f"{action} {plan.run_count} runs ({plan.workflow_count} workflow runs and their nested "
        f"runs){also} started before {_when(plan.cutoff_ms)} from {names} at "
        f"{redact_uri(plan.tracking_uri)}?",
        default=False,
        err=True,
    )


@app.command("cleanup")
def cleanup(
    older_than_days: float | None = typer.Option(
        None,
        "--older-than-days",
        help="Delete workflow runs started more than N days ago, 0 to 36500 "
        "(default: config retention_days).",
    ),
    experiment: list[str] = typer.Option(
        [],
        "--experiment",
        "-e",
        help="Experiment name (repeatable; default: the config's, else configurable_agents).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would change; change nothing."
    ),
    purge: bool = typer.Option(
        False, "--purge", help="Also remove artifacts and database rows, as `mlflow gc` does."
    ),
    tracking_uri: str | None = typer.Option(
        None, "--tracking-uri", help="Default: the config's, else MLFLOW_TRACKING_URI."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Workflow YAML (or bare config) for the MLflow settings."
    ),
    include_running: bool = typer.Option(
        False, "--include-running", help="Also delete old runs that are still RUNNING."
    ),
    keep_traces: bool = typer.Option(
        False, "--keep-traces", help="Keep the deleted workflows' MLflow traces (by default "
        "they are deleted with the runs; MLflow has no soft delete for traces)."
    ),
    stale: bool = typer.Option(
        False, "--stale", help="Mark KILLED the RUNNING runs whose process died."
    ),
    stale_after_minutes: float | None = typer.Option(
        None,
        "--stale-after-minutes",
        help=f"With --stale: heartbeat age that makes a run from another host stale "
        f"(default {DEFAULT_STALE_AFTER_MINUTES:g}).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before deleting."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the retention summary as JSON (stdout) instead of text."
    ),
) -> None:
    """Delete old workflow runs and their nested runs (only runs configurable-agents wrote).

    With --stale: close runs a dead process left RUNNING (and delete too with --older-than-days).
    """
    if stale_after_minutes is not None and not stale:
        raise _fail("--stale-after-minutes needs --stale", code=2)
    if as_json and stale:
        raise _fail("--json prints the retention summary; run --stale without --json", code=2)
    try:
        if stale_after_minutes is not None:
            check_stale_after_minutes(stale_after_minutes, name="--stale-after-minutes")
        if older_than_days is not None:
            check_older_than_days(older_than_days, name="--older-than-days")
    except RetentionError as exc:
        raise _fail(str(exc), code=2) from None
    try:
        settings = _settings(config)
        uri = _tracking_uri(tracking_uri, settings)
    except ConfigError as exc:
        raise _fail(" ".join(str(exc).split()), code=2) from None
    experiments = list(dict.fromkeys(experiment)) or [settings.experiment_name]
    days = older_than_days if older_than_days is not None else settings.retention_days
    run_retention = older_than_days is not None or not stale
    if run_retention and days is None:
        raise _fail(
            "no retention period: pass --older-than-days N, or set retention_days "
            "(config.observability.mlflow.retention_days, --config FILE, or "
            "CONFIGURABLE_AGENTS_MLFLOW_RETENTION_DAYS)",
            code=2,
        )
    try:
        if stale:
            _print_stale(
                close_stale_runs(
                    uri,
                    experiments,
                    stale_after_minutes=stale_after_minutes or DEFAULT_STALE_AFTER_MINUTES,
                    dry_run=dry_run,
                )
            )
        if not run_retention:
            return
        assert days is not None
        if purge:
            check_purge_supported(uri)
        with _progress_bar() as progress:
            plan = plan_cleanup(
                uri, experiments, days, include_running=include_running, progress=progress
            )
        if dry_run:
            dry = summarize_plan(plan, dry_run=True, purge=purge, delete_traces=not keep_traces)
            if as_json:
                typer.echo(json.dumps(dry.to_dict(), indent=2))
                return
            _print_plan(plan)
            _print_cleanup(dry)
            return
        if plan.run_count and not yes and not _confirm(plan, purge, not keep_traces):
            raise _fail("aborted; nothing deleted")
        with _progress_bar() as progress:
            summary = apply_cleanup(plan, purge=purge, delete_traces=not keep_traces,
                                    progress=progress)
    except RetentionError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
        return
    _print_cleanup(summary)
