"""The ``configurable-agents`` command line."""

from __future__ import annotations

import typer

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

app = typer.Typer(
    name="configurable-agents",
    help="MLflow observability for LangChain / LangGraph workflows.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
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
