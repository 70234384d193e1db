"""The ``configurable-agents`` command line.

Importing this module must stay cheap: ``--help`` and ``--version`` answer in well under a
second because command modules import MLflow, LangChain and the evaluation stack inside the
command functions only (tests/test_cli_convention.py checks that MLflow is not imported).
Every command follows commands/options.py: ``--format table|json|csv``, ``-o/--output FILE``,
machine output alone on stdout, one-line errors on stderr.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from configurable_agents.commands import (
    cleanup_cmd,
    config_cmd,
    dataset_cmd,
    eval_cmd,
    feedback_cmd,
    prices_cmd,
    report_cmd,
    run_cmd,
    sync_cmd,
)
from configurable_agents.commands.options import printable
from configurable_agents.commands.quiet import quiet_third_party

# Errors the user can fix (bad config, missing provider key, unusable dataset or option):
# one line and exit 2, never a traceback. Named by module so that checking them imports
# nothing: an exception of a class whose module was never imported cannot be raised.
_EXPECTED = (
    ("configurable_agents.config.loader", "ConfigError"),
    ("configurable_agents.runtime.providers", "ProviderError"),
    ("configurable_agents.runtime.executor", "WorkflowInputError"),
    ("configurable_agents.evaluation.dataset", "DatasetError"),
)


def expected_error(exc: BaseException) -> bool:
    for module, name in _EXPECTED:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


class _Group(TyperGroup):
    """Turns an expected error that a command did not handle into one line + exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not expected_error(exc):
                raise
            typer.echo(f"error: {printable(' '.join(str(exc).split()))}", err=True)
            raise typer.Exit(code=2) from None


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"configurable-agents {version('configurable-agents')}")
        except PackageNotFoundError:
            typer.echo("configurable-agents (not installed)")
        raise typer.Exit()


app = typer.Typer(
    name="configurable-agents",
    help="MLflow observability for LangChain / LangGraph workflows.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    cls=_Group,
)


@app.callback()
def main(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show MLflow's logs, warnings and progress bars."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """MLflow observability for LangChain / LangGraph workflows."""
    quiet_third_party(verbose)


app.add_typer(config_cmd.app, name="config")
app.add_typer(report_cmd.app, name="report")
app.add_typer(dataset_cmd.app, name="dataset")
app.command("prices")(prices_cmd.prices)
run_cmd.register(app)
app.command("cleanup")(cleanup_cmd.cleanup)
app.command("sync")(sync_cmd.sync)
eval_cmd.register(app)
feedback_cmd.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
