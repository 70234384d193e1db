"""``configurable-agents sync``: replay spooled workflows into MLflow now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from configurable_agents.commands.options import (
    FORMAT,
    OUTPUT,
    Format,
    check_output,
    emit,
    working,
)


def sync(
    config: Path | None = typer.Option(
        None, "--config", help="Workflow YAML with the MLflow block."
    ),
    tracking_uri: str | None = typer.Option(None, help="Tracking URI whose spool to replay."),
    spool_dir: Path | None = typer.Option(
        None, help="Spool directory (default: per tracking URI)."
    ),
    fmt: Format = FORMAT,
    output: Path | None = OUTPUT,
) -> None:
    """Write workflows spooled while MLflow was unreachable; safe to run from several places."""
    from configurable_agents.config import ConfigError, MLFlowConfig, load_global_config
    from configurable_agents.config.schema import resolved_mlflow
    from configurable_agents.observability.sinks.mlflow.replay import replay_spool
    from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter
    from configurable_agents.observability.sinks.spool import (
        Spool,
        SpoolUnsafeError,
        spool_dir_for,
    )

    check_output(output)
    try:
        base = resolved_mlflow(load_global_config(config)) if config else MLFlowConfig()
        fields = base.model_dump(exclude_unset=True)
        if tracking_uri:
            fields["tracking_uri"] = tracking_uri
        if spool_dir:
            fields["spool_dir"] = str(spool_dir)
        mlflow_config = MLFlowConfig.model_validate(fields)
    except (ConfigError, ValueError) as exc:
        typer.echo(f"Invalid configuration: {exc}", err=True)
        raise typer.Exit(code=2) from None
    spool = Spool(spool_dir_for(mlflow_config.tracking_uri, mlflow_config.spool_dir),
                  max_bytes=mlflow_config.spool_max_bytes)
    try:
        spool.check_safe()
    except SpoolUnsafeError as exc:
        typer.echo(f"Refusing to sync: {exc}", err=True)
        raise typer.Exit(code=2) from None
    spool.recover()  # claims and temp files left by dead processes
    for entry in spool.hostile():
        typer.echo(f"Skipped {entry.name}: not a regular file (links and devices are never "
                   "read)", err=True)
    pending = len(spool)
    summary: dict[str, Any] = {
        "tracking_uri": mlflow_config.display_tracking_uri, "spool_dir": str(spool.directory),
        "pending": pending, "written": 0, "traces": 0, "left": pending, "set_aside": 0,
        "trace_errors": 0, "error": None,
    }
    if pending == 0:
        _emit(fmt, output, summary, f"Nothing to sync in {spool.directory}.")
        return
    errors: list[str] = []
    writer = MlflowWriter(mlflow_config.tracking_uri)
    with working(f"syncing {pending} spooled workflows"):
        result = replay_spool(
            spool, writer, on_error=lambda exc: errors.append(f"{type(exc).__name__}: {exc}")
        )
    for line in result.bad_files:
        typer.echo(f"Set aside {_printable(line)}", err=True)
    left = len(spool)
    traces = f" (with {result.traces} traces)" if result.traces else ""
    message = errors[0].replace(mlflow_config.tracking_uri,
                                mlflow_config.display_tracking_uri) if errors else None
    summary.update(written=result.written, traces=result.traces, left=left,
                   set_aside=len(result.bad_files), trace_errors=result.trace_errors,
                   error=message)
    _emit(fmt, output, summary,
          f"Synced {result.written} of {pending} spooled workflows{traces} to "
          f"{mlflow_config.display_tracking_uri}; {left} left in {spool.directory}.")
    if result.bad_files:
        typer.echo(f"{len(result.bad_files)} set aside in {spool.directory / 'rejected'} "
                   "(each with a .reason.txt); they are not retried.", err=True)
    if result.trace_errors:
        typer.echo(f"{result.trace_errors} traces could not be written; their runs were "
                   "(see the warnings above).", err=True)
    if message is not None:
        typer.echo(f"Stopped at an MLflow error: {message}", err=True)
        raise typer.Exit(code=1)


def _emit(fmt: Format, output: Path | None, summary: dict[str, Any], line: str) -> None:
    def table(console: Console) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    emit(fmt, output, data=lambda: summary, table=table)


def _printable(text: str) -> str:
    """One line, no terminal control characters (file names and reasons are untrusted)."""
    return "".join(c if c.isprintable() else "?" for c in text)[:500]
