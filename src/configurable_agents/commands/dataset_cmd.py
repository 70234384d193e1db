"""``configurable-agents dataset export``: production workflows as ``eval`` test cases.

Cases go to stdout (or ``-o FILE``) as JSON Lines, the format ``eval --dataset`` reads;
progress and the summary go to stderr. Errors are one line: exit 2 for an option that
cannot be used (a bad --feedback, an unknown experiment), 1 for a store that fails.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer

app = typer.Typer(help="Evaluation datasets from production runs.", no_args_is_help=True)


class Format(StrEnum):
    jsonl = "jsonl"
    json = "json"


def _fail(message: str, code: int) -> typer.Exit:
    from configurable_agents.reports.render import printable

    typer.echo(f"error: {printable(message)}", err=True)
    return typer.Exit(code=code)


@app.command("export")
def export(
    experiment: str = typer.Option(..., "--experiment", "-e", help="Experiment name or id."),
    filter_string: str | None = typer.Option(
        None, "--filter",
        help="MLflow filter over workflow runs, e.g. \"tags.status = 'FAILED'\"."),
    feedback: list[str] | None = typer.Option(
        None, "--feedback", help="Only runs with this feedback, NAME=VALUE (repeatable: all "
        "must match), e.g. thumbs_up=false."),
    expected_from: str = typer.Option(
        "expected_response", "--expected-from",
        help="Assessment (expectation or label feedback) whose value becomes 'expected'; "
        "without one 'expected' is null, for a person to fill in."),
    limit: int = typer.Option(1000, "--limit", min=1, max=10_000, help="At most N cases."),
    mlflow_dataset: str | None = typer.Option(
        None, "--mlflow-dataset", help="Also create an MLflow evaluation dataset of this name."),
    tracking_uri: str | None = typer.Option(
        None, "--tracking-uri", help="Default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db."),
    fmt: Format = typer.Option(Format.jsonl, "--format", "-f",
                               help="jsonl (what eval --dataset reads) or json (one array)."),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="Write to this file instead of stdout."),
) -> None:
    """Export selected workflow runs (failures, thumbs-down...) as evaluation cases."""
    import mlflow
    from mlflow.tracing.client import TracingClient

    from configurable_agents.feedback.dataset_export import (
        FeedbackMatch,
        select_cases,
        to_mlflow_dataset,
    )
    from configurable_agents.feedback.values import FeedbackError
    from configurable_agents.reports.access import open_client, resolve_experiments
    from configurable_agents.reports.model import ReportError, ReportOptionError
    from configurable_agents.reports.render import printable

    try:
        matches = [FeedbackMatch.parse(spec) for spec in feedback or []]
    except FeedbackError as exc:
        raise _fail(str(exc), 2) from None
    if output is not None and not output.parent.is_dir():
        raise _fail(f"--output {output}: folder {output.parent} does not exist", 2)
    try:
        client, uri = open_client(tracking_uri)
        (experiment_id,) = resolve_experiments(client, uri, [experiment])
    except ReportError as exc:
        code = 2 if isinstance(exc, ReportOptionError) else 1
        raise _fail(str(exc), code) from None
    try:
        cases = list(select_cases(client, TracingClient(uri), [experiment_id],
                                  filter_string=filter_string, feedback=matches,
                                  expected_from=expected_from, limit=limit))
    except Exception as exc:
        from configurable_agents.tracking.errors import flat_message, shorten

        raise _fail(f"cannot read runs: {shorten(flat_message(exc, uri))}", 1) from None
    rows = [case.row() for case in cases]
    if fmt is Format.json:
        text = json.dumps(rows, indent=2, default=str) + "\n"
    else:
        text = "".join(json.dumps(row, default=str) + "\n" for row in rows)
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot write {output}: {exc.strerror or exc}", 1) from None
        typer.echo(f"Wrote {output}", err=True)
    typer.echo(f"{len(rows)} case(s) exported "
               f"({sum(r['expected'] is None for r in rows)} without an expected answer)",
               err=True)
    if mlflow_dataset and cases:
        mlflow.set_tracking_uri(uri)
        try:
            dataset_id = to_mlflow_dataset(client, mlflow_dataset, experiment_id, cases)
        except Exception as exc:
            from configurable_agents.tracking.errors import flat_message, shorten

            raise _fail(f"the store cannot hold an MLflow evaluation dataset: "
                        f"{shorten(flat_message(exc, uri))}", 1) from None
        typer.echo(f"MLflow evaluation dataset {printable(mlflow_dataset)}: {dataset_id}",
                   err=True)
