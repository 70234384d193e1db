"""``configurable-agents report costs | quality | compare``: read runs back from MLflow.

Errors are one line on stderr (no traceback): exit code 2 for an option value that cannot be
used (an unreadable or out-of-range time, a bad filter or group-by key, an unknown experiment,
an output folder that does not exist), 1 for a store that fails (unreachable, erroring). An
empty result is exit 0 with a "No runs matched" line. The table goes to stdout, progress to stderr.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from configurable_agents.commands.options import (
    FORMAT,
    OUTPUT,
    Format,
    check_output,
    emit,
    fail,
    to_csv,
)

if TYPE_CHECKING:  # the read side imports MLflow: only inside the commands
    from configurable_agents.reports.reporting import ProgressFn, ReportError

app = typer.Typer(help="Cost reports and run comparison, read back from MLflow.",
                  no_args_is_help=True)

# MLflow retries an unreachable server 7 times with exponential backoff and waits 120 s per
# request by default: minutes before an error. A report fails fast unless the user chose.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # reading an evaluation's table
}

TRACKING_URI = typer.Option(
    None, "--tracking-uri", help="Default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db.")
EXPERIMENT = typer.Option(
    None, "--experiment", "-e", help="Experiment name or id (repeatable). Default: "
    "$MLFLOW_EXPERIMENT_NAME if set, else every experiment holding configurable-agents runs.")
SINCE = typer.Option(None, "--since", help="7d, 12h, 30m, 2w, today or an ISO date/time (UTC).")
UNTIL = typer.Option(None, "--until", help="Same forms; a bare date includes that whole day.")
DIRECT_DB = typer.Option(
    True, "--direct-db/--no-direct-db",
    help="On a database tracking URI (sqlite, postgresql, mysql) read MLflow's tables "
    "directly, read-only (several times faster on large experiments); --no-direct-db goes "
    "through MLflow's search_runs API.")

_fail = fail


def _report_failure(exc: ReportError) -> typer.Exit:
    from configurable_agents.reports.reporting import ReportOptionError

    return _fail(str(exc), code=2 if isinstance(exc, ReportOptionError) else 1)


def _http_fail_fast() -> None:
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


@contextmanager
def _progress() -> Iterator[ProgressFn]:
    """A rich spinner with the count of runs read, on stderr, only when it is a terminal."""
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                  TextColumn("{task.completed:,} runs"), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        tasks: dict[str, object] = {}

        def update(phase: str, count: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(f"reading {phase} runs", total=None)
            bar.update(tasks[phase], completed=count)  # type: ignore[arg-type]

        yield update


@app.command("costs")
def costs(
    tracking_uri: str | None = TRACKING_URI,
    experiment: list[str] | None = EXPERIMENT,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    group_by: list[str] | None = typer.Option(
        None, "--group-by", "-g", help="workflow, workflow_version, model, node, user, team, "
        "session, tenant, day, status, tag:<name>, param:<name> (repeatable or comma-separated). "
        "Default: workflow."),
    filter_string: str | None = typer.Option(
        None, "--filter", help="MLflow filter over workflow runs, e.g. \"tags.team = 'data'\"."),
    fmt: Format = FORMAT,
    output: Path | None = OUTPUT,
    top: int | None = typer.Option(None, "--top", min=1, help="Only the N costliest groups."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Also write a PNG: cost per day stacked by the first group-by key."),
    direct_db: bool = DIRECT_DB,
) -> None:
    """Runs, success rate, tokens, cost, duration (mean, p95) and retries per group."""
    from configurable_agents.reports import render
    from configurable_agents.reports.reporting import ReportError, cost_report, plot_cost_per_day

    _http_fail_fast()
    check_output(output)
    check_output(plot, "--plot")
    try:
        with _progress() as progress:
            report = cost_report(
                group_by or ["workflow"], tracking_uri=tracking_uri, experiments=experiment,
                since=since, until=until, filter_string=filter_string, top=top,
                progress=progress, direct_db=direct_db)
    except ReportError as exc:
        raise _report_failure(exc) from None
    if report.empty and fmt is not Format.table:
        typer.echo(render.no_runs_line(report.scope), err=True)
    emit(fmt, output, data=lambda: None, json_text=lambda: render.cost_report_json(report),
         csv_text=lambda: render.cost_report_csv(report),
         table=lambda c: render.print_cost_report(report, c))
    if plot is not None and not report.empty:
        try:
            plot_cost_per_day(report, plot)
        except OSError as exc:
            raise _fail(f"cannot write {plot}: {exc.strerror or exc}") from None
        except ReportError as exc:
            raise _fail(f"cannot write plot {plot}: {exc}") from None
        typer.echo(f"Wrote {plot}", err=True)


@app.command("quality")
def quality(
    tracking_uri: str | None = TRACKING_URI,
    experiment: list[str] | None = EXPERIMENT,
    since: str = typer.Option("7d", "--since", help="7d, 12h, 30m, 2w, today or an ISO "
                              "date/time (UTC). Default: 7d."),
    until: str | None = UNTIL,
    bucket: str = typer.Option("day", "--bucket", help="day or week (ISO week, by Monday)."),
    filter_string: str | None = typer.Option(
        None, "--filter", help="MLflow filter over workflow runs, e.g. \"tags.team = 'data'\"."),
    fmt: Format = FORMAT,
    output: Path | None = OUTPUT,
    direct_db: bool = DIRECT_DB,
) -> None:
    """Feedback and online scores per workflow and version, per day: mean and count."""
    from configurable_agents.reports.reporting import ReportError
    from configurable_agents.reports.trends import BUCKETS, print_trends, quality_trends

    _http_fail_fast()
    check_output(output)
    if bucket not in BUCKETS:
        raise _fail(f"--bucket {bucket}: use day or week", code=2)
    try:
        trends = quality_trends(tracking_uri=tracking_uri, experiments=experiment,
                                since=since, until=until, filter_string=filter_string,
                                bucket=bucket, direct_db=direct_db)  # type: ignore[arg-type]
    except ReportError as exc:
        raise _report_failure(exc) from None
    if trends.empty:
        typer.echo(f"No feedback or online scores on the {trends.runs} workflow runs read.",
                   err=True)
    emit(fmt, output, data=lambda: trends.to_dict(),
         csv_text=lambda: to_csv([p.to_dict() for p in trends.points])
         if trends.points else "workflow,workflow_version,bucket,score,mean,count,runs\r\n",
         table=lambda c: print_trends(trends, c))


@app.command("compare")
def compare(
    baseline: str = typer.Option(
        ..., "--baseline", help="MLflow filter (e.g. \"params.workflow_version = '1.0.0'\") "
        "or comma-separated run ids."),
    candidate: str = typer.Option(..., "--candidate", help="Same forms as --baseline."),
    tracking_uri: str | None = TRACKING_URI,
    experiment: list[str] | None = EXPERIMENT,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    fmt: Format = FORMAT,
    output: Path | None = OUTPUT,
    direct_db: bool = DIRECT_DB,
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed (accuracy and scores)."),
) -> None:
    """Side-by-side measures with absolute and relative deltas, overall and per node.

    When both sides name evaluation runs (run ids, or filters matching them), compare
    their example runs and add accuracy and cost per correct answer, paired by example
    id, with paired-bootstrap 95% intervals and a verdict. Feedback and online scores
    (``feedback/*``, ``quality/*``) get bootstrap 95% intervals too: paired by example id
    on evaluation runs, unpaired (each side resampled) on production runs. Exit 1 when a
    side matches no workflow runs (there is nothing to compare).
    """
    from configurable_agents.reports import render
    from configurable_agents.reports.quality import (
        compare_evaluations,
        examples_filter,
        print_quality,
    )
    from configurable_agents.reports.reporting import ReportError, compare_runs

    _http_fail_fast()
    check_output(output)
    try:
        quality = compare_evaluations(baseline, candidate, tracking_uri=tracking_uri,
                                      experiments=experiment, seed=seed)
    except ReportError as exc:
        raise _report_failure(exc) from None
    if quality is not None:
        baseline = examples_filter(quality.baseline.run_id)
        candidate = examples_filter(quality.candidate.run_id)
    try:
        with _progress() as progress:
            result = compare_runs(baseline, candidate, tracking_uri=tracking_uri,
                                  experiments=experiment, since=since, until=until,
                                  progress=progress, direct_db=direct_db, seed=seed)
    except ReportError as exc:
        raise _report_failure(exc) from None
    if result.empty_sides:  # a half-empty table would look like an answer
        for line in [*result.notes, *render.empty_side_lines(result)]:
            typer.echo(render.printable(line), err=True)
        raise typer.Exit(code=1)
    if fmt is not Format.table:
        for line in result.notes:
            typer.echo(render.printable(line), err=True)
    if quality is None:
        emit(fmt, output, data=lambda: None, json_text=lambda: render.comparison_json(result),
             csv_text=lambda: render.comparison_csv(result),
             table=lambda c: render.print_comparison(result, c))
        return
    q = quality

    def json_text() -> str:
        return json.dumps({**result.to_dict(), "quality": q.to_dict()}, indent=2)

    def csv_text() -> str:
        return render.comparison_csv(result) + f"quality,verdict,,,,{q.verdict}\r\n"

    def tables(console: Console) -> None:
        render.print_comparison(result, console)
        print_quality(q, console)

    emit(fmt, output, data=lambda: None, json_text=json_text, csv_text=csv_text, table=tables)


__all__ = ["app"]
