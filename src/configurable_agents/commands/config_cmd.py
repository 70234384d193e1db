"""``configurable-agents config validate FILE``."""

from __future__ import annotations

from pathlib import Path

import typer

from configurable_agents.commands.options import (
    FORMAT,
    OUTPUT,
    Format,
    check_output,
    emit,
    to_json,
)

app = typer.Typer(help="Inspect and validate configuration.", no_args_is_help=True)


@app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="Workflow YAML (with a config: block) or a bare config."),
    env: bool = typer.Option(True, help="Apply CONFIGURABLE_AGENTS_MLFLOW_* overrides."),
    fmt: Format = FORMAT,
    output: Path | None = OUTPUT,
) -> None:
    """Print the resolved config (credentials masked) or the errors.

    The table view is the same indented JSON: a config is a tree, not rows.
    """
    from configurable_agents.config import ConfigError, load_global_config, redacted_dump

    check_output(output)
    try:
        config = load_global_config(file, env=env)
    except ConfigError as exc:
        # Plain echo, not rich: rich would parse '[...]' in user values as markup and wrap
        # long 'file:line: path: message' lines mid-word.
        typer.secho(f"Invalid configuration: {file}", fg=typer.colors.RED, err=True)
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from None
    dumped = redacted_dump(config)
    emit(fmt, output, data=lambda: dumped,
         table=lambda console: console.file.write(to_json(dumped)))
