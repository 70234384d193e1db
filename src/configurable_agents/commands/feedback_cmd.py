"""``configurable-agents feedback RUN_OR_TRACE_ID NAME VALUE``: score a finished workflow.

The id is an MLflow run id, an MLflow trace id (``tr-...``) or the invocation's LangChain run
id. The result (assessment id, the run's mean and count of this feedback) goes to stdout in
the chosen format; errors are one line on stderr, exit 2 for an id, name or value that
cannot be used, 1 for a store that cannot be read or written.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path

import typer

from configurable_agents.feedback import SOURCES, FeedbackError, log_feedback, parse_value


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def _fail(message: str, code: int) -> typer.Exit:
    from configurable_agents.reports.render import printable

    typer.echo(f"error: {printable(message)}", err=True)
    return typer.Exit(code=code)


def _check_store(tracking_uri: str | None) -> str:
    import os

    from configurable_agents.config.schema import DEFAULT_TRACKING_URI, redact_uri
    from configurable_agents.tracking.reachability import StoreUnreachable, check_reachable

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///").split("?", 1)[0]
        if path and path != ":memory:" and not Path(path).exists():
            raise _fail(f"no MLflow database at {path} (tracking URI {redact_uri(uri)})", 1)
    try:
        check_reachable(uri)
    except StoreUnreachable as exc:
        raise _fail(str(exc), 1) from None
    return uri


def feedback_command(
    ref: str = typer.Argument(..., metavar="RUN_OR_TRACE_ID",
                              help="MLflow run id, trace id (tr-...) or LangChain run id."),
    name: str = typer.Argument(..., help="Feedback name, e.g. thumbs_up, correctness."),
    value: str = typer.Argument(..., help="true/false (yes/no, pass/fail), a number, or a "
                                          "label."),
    rationale: str | None = typer.Option(None, "--rationale", "-r", help="Why."),
    source: str = typer.Option("human", "--source",
                               help=f"Who scored: {', '.join(SOURCES)}."),
    user: str | None = typer.Option(None, "--user", "-u",
                                    help="Who gave it (the assessment's source id)."),
    tracking_uri: str | None = typer.Option(
        None, "--tracking-uri", help="Default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, json or csv."),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="Write to this file instead of stdout."),
) -> None:
    """Record feedback on a workflow: an assessment on its trace, a metric on its run.

    A later feedback with the same NAME, --source and --user overrides the earlier one;
    other users' feedback is kept and averaged into the run's feedback/NAME metric.
    """
    try:
        parsed = parse_value(value)
    except FeedbackError as exc:
        raise _fail(str(exc), 2) from None
    uri = _check_store(tracking_uri)
    try:
        recorded = log_feedback(ref, name, parsed, rationale=rationale, source=source,
                                user=user, tracking_uri=uri)
    except FeedbackError as exc:
        raise _fail(str(exc), 2) from None
    except Exception as exc:  # the store refused or failed: one line, no traceback
        from configurable_agents.tracking.errors import flat_message, shorten

        raise _fail(f"cannot record feedback: {shorten(flat_message(exc, uri))}", 1) from None
    data = asdict(recorded)
    if fmt is Format.json:
        text = json.dumps(data) + "\n"
    elif fmt is Format.csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(data))
        writer.writeheader()
        writer.writerow(data)
        text = buffer.getvalue()
    else:
        from configurable_agents.reports.render import printable

        mean = "-" if recorded.run_mean is None else f"{recorded.run_mean:g}"
        text = (f"feedback {printable(recorded.name)}={printable(str(recorded.value))} on trace "
                f"{recorded.trace_id} (run {recorded.run_id or '-'}): "
                f"{recorded.run_metric or 'label'} mean {mean} over {recorded.run_count}\n")
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot write {output}: {exc.strerror or exc}", 1) from None
    typer.echo(f"Wrote {output}", err=True)


def register(app: typer.Typer) -> None:
    app.command("feedback")(feedback_command)
