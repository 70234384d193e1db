"""``configurable-agents cleanup``: retention deletes and closing stale RUNNING runs.

Wired as a top-level command: ``app.command("cleanup")(cleanup_cmd.cleanup)`` in
``cli.py``. The module's own one-command ``app`` exists so tests can drive it alone.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from configurable_agents.commands.options import (
    FORMAT,
    JSON_ALIAS,
    OUTPUT,
    Format,
    check_output,
    emit,
    resolve_format,
)

if TYPE_CHECKING:  # retention imports MLflow: only inside the command
    from configurable_agents.config import MLFlowConfig
    from configurable_agents.reports.retention import (
        CleanupPlan,
        CleanupSummary,
        ProgressFn,
        StaleSummary,
    )

Echo = Callable[[str], None]

app = typer.Typer(help="Delete old workflow runs; close runs a dead process left RUNNING.")

_err = Console(stderr=True, highlight=False)
DRY_RUN_LIST_LIMIT = 20


def _fail(message: str, code: int = 1) -> typer.Exit:
    # Plain echo: rich would read '[...]' in names as markup and wrap long lines.
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=code)


def _settings(config: Path | None) -> MLFlowConfig:
    """The MLflow block from ``--config`` (or just the environment), env overrides applied."""
    from configurable_agents.config import GlobalConfig
    from configurable_agents.config.loader import apply_env_overrides, load_global_config
    from configurable_agents.config.schema import resolved_mlflow

    loaded = load_global_config(config) if config else apply_env_overrides(GlobalConfig())
    return resolved_mlflow(loaded)


def _tracking_uri(explicit: str | None, settings: MLFlowConfig) -> str:
    """``--tracking-uri``, else the config's, else ``MLFLOW_TRACKING_URI``, else the default."""
    from pydantic import ValidationError

    from configurable_agents.config import ConfigError, MLFlowConfig
    from configurable_agents.config.loader import format_validation_error
    from configurable_agents.config.schema import DEFAULT_TRACKING_URI

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


def _experiments(given: list[str], settings: MLFlowConfig) -> list[str]:
    """``-e`` names, else the configured experiment, else [] (every one holding our runs)."""
    if given:
        return list(dict.fromkeys(given))
    if "experiment_name" in settings.model_fields_set:
        return [settings.experiment_name]
    configured = os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip()
    return [configured] if configured else []


def _print_plan(plan: CleanupPlan, echo: Echo) -> None:
    for experiment in plan.experiments:
        shown = experiment.trees[:DRY_RUN_LIST_LIMIT]
        for tree in shown:
            root = tree.root
            echo(
                f"  would delete {root.run_id}  {_when(root.start_time)}  {root.status:<8} "
                f"{root.run_name} (+{len(tree.nested)} nested)"
            )
        if len(experiment.trees) > len(shown):
            echo(f"  ... and {len(experiment.trees) - len(shown)} more in {experiment.name}")


def _print_cleanup(summary: CleanupSummary, echo: Echo) -> None:
    verb = "would delete" if summary.dry_run else "deleted"
    echo(
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
        echo(line)
    total = summary.runs_matched if summary.dry_run else summary.deleted
    purged = summary.runs_matched if summary.dry_run else summary.purged
    traces = ""
    if summary.traces_matched and summary.delete_traces:
        count = summary.traces_matched if summary.dry_run else summary.traces_deleted
        traces = f", {count} traces {verb}"
    elif summary.traces_matched:
        traces = f"; {summary.traces_matched} traces kept (--keep-traces)"
    echo(
        f"Total: {summary.matched} workflow runs matched, {summary.runs_matched} runs, "
        f"{total} {verb}" + (f", {purged} purged" if summary.purge else "") + traces + "."
    )


def _print_stale(summary: StaleSummary, echo: Echo) -> None:
    echo(
        f"Stale runs at {summary.tracking_uri} (RUNNING with a dead process, or no heartbeat "
        f"for {summary.stale_after_minutes:g} min)"
        + (" [dry run: nothing changed]" if summary.dry_run else "")
    )
    verb = "would mark KILLED" if summary.dry_run else "marked KILLED"
    for e in summary.experiments:
        echo(f"  {e.name}: {e.running_checked} RUNNING workflow runs, {len(e.stale)} stale")
        for run in e.stale:
            echo(
                f"    {run.run_id}  {run.run_name}  started {_when(run.start_time)}: "
                f"{run.reason}; {verb} (+{len(run.nested_running)} nested)"
            )
    closed = "" if summary.dry_run else f", {summary.closed} runs closed"
    echo(f"Total: {summary.stale_count} stale workflow runs{closed}.")


def _confirm(plan: CleanupPlan, purge: bool, delete_traces: bool) -> bool:
    from configurable_agents.config.schema import redact_uri

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
        help="Experiment name (repeatable; default: the config's or $MLFLOW_EXPERIMENT_NAME, "
        "else every experiment holding configurable-agents runs).",
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
        help="With --stale: heartbeat age that makes a run from another host stale "
        "(default: one hour).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before deleting."),
    fmt: Format = FORMAT,
    output: Path | None = OUTPUT,
    as_json: bool = JSON_ALIAS,
) -> None:
    """Delete old workflow runs and their nested runs (only runs configurable-agents wrote).

    With --stale: close runs a dead process left RUNNING (and delete too with --older-than-days).
    """
    from configurable_agents.config import ConfigError
    from configurable_agents.reports.retention import (
        DEFAULT_STALE_AFTER_MINUTES,
        RetentionError,
        apply_cleanup,
        check_older_than_days,
        check_purge_supported,
        check_stale_after_minutes,
        close_stale_runs,
        plan_cleanup,
        summarize_plan,
    )

    fmt = resolve_format(fmt, as_json)
    check_output(output)
    if stale_after_minutes is not None and not stale:
        raise _fail("--stale-after-minutes needs --stale", code=2)
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
    experiments = _experiments(experiment, settings)
    days = older_than_days if older_than_days is not None else settings.retention_days
    run_retention = older_than_days is not None or not stale
    if run_retention and days is None:
        raise _fail(
            "no retention period: pass --older-than-days N, or set retention_days "
            "(config.observability.mlflow.retention_days, --config FILE, or "
            "CONFIGURABLE_AGENTS_MLFLOW_RETENTION_DAYS)",
            code=2,
        )
    stale_summary: StaleSummary | None = None
    summary: CleanupSummary | None = None
    plan: CleanupPlan | None = None
    try:
        if stale:
            stale_summary = close_stale_runs(
                uri,
                experiments,
                stale_after_minutes=stale_after_minutes or DEFAULT_STALE_AFTER_MINUTES,
                dry_run=dry_run,
            )
        if run_retention:
            assert days is not None
            if purge:
                check_purge_supported(uri)
            with _progress_bar() as progress:
                plan = plan_cleanup(
                    uri, experiments, days, include_running=include_running, progress=progress
                )
            if dry_run:
                summary = summarize_plan(plan, dry_run=True, purge=purge,
                                         delete_traces=not keep_traces)
            else:
                if plan.run_count and not yes and not _confirm(plan, purge, not keep_traces):
                    raise _fail("aborted; nothing deleted")
                with _progress_bar() as progress:
                    summary = apply_cleanup(plan, purge=purge, delete_traces=not keep_traces,
                                            progress=progress)
    except RetentionError as exc:
        raise _fail(str(exc)) from None
    _emit(fmt, output, stale_summary, summary, plan if dry_run else None)


def _emit(fmt: Format, output: Path | None, stale: StaleSummary | None,
          summary: CleanupSummary | None, dry_plan: CleanupPlan | None) -> None:
    """Text for people; for json/csv the retention summary, the stale one, or both."""
    def data() -> Any:
        parts: dict[str, Any] = {}
        if stale is not None:
            parts["stale"] = dataclasses.asdict(stale)
        if summary is not None:
            parts["retention"] = summary.to_dict()
        return parts["retention"] if list(parts) == ["retention"] else parts

    def table(console: Console) -> None:
        def echo(line: str) -> None:
            console.print(line, markup=False, highlight=False, soft_wrap=True)

        if stale is not None:
            _print_stale(stale, echo)
        if dry_plan is not None:
            _print_plan(dry_plan, echo)
        if summary is not None:
            _print_cleanup(summary, echo)

    emit(fmt, output, data=data, table=table)
