"""``configurable-agents config validate FILE``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from configurable_agents.config import ConfigError, load_global_config, redacted_dump

app = typer.Typer(help="Inspect and validate configuration.", no_args_is_help=True)


@app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="Workflow YAML (with a config: block) or a bare config."),
    env: bool = typer.Option(True, help="Apply CONFIGURABLE_AGENTS_MLFLOW_* overrides."),
) -> None:
    """Print the resolved config (credentials masked) or the errors."""
    try:
        config = load_global_config(file, env=env)
    except ConfigError as exc:
        # Plain echo, not rich: rich would parse '[...]' in user values as markup and wrap
        # long 'file:line: path: message' lines mid-word.
        typer.secho(f"Invalid configuration: {file}", fg=typer.colors.RED, err=True)
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from None
    typer.echo(json.dumps(redacted_dump(config), indent=2))
