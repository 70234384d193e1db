"""``configurable-agents report costs | compare``: read runs back from MLflow and summarise them.

Errors are one line on stderr (no traceback): exit code 2 for an option value that cannot be
used (a time out of range, an output folder that does not exist), 1 for everything else (bad
filter, unknown experiment, unreachable store). An empty result is exit 0 with a "No runs
matched" line. The table goes to stdout, progress to stderr.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from configurable_agents.reports import render
from configurable_agents.reports.quality import compare_evaluations, examples_filter, print_quality
from configurable_agents.reports.reporting import (
    DEFAULT_EXPERIMENT,
    ProgressFn,
    ReportError,
    ReportOptionError,
    compare_runs,
    cost_report,
    plot_cost_per_day,
    resolve_tracking_uri,
)

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


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


TRACKING_URI = typer.Option(
    None, "--tracking-uri", help="Default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db.")
EXPERIMENT = typer.Option(
    None, "--experiment", "-e", help=f"Experiment name or id (repeatable). "
    f"Default: {DEFAULT_EXPERIMENT}.")
SINCE = typer.Option(None, "--since", help="7d, 12h, 30m, 2w, today or an ISO date/time (UTC).")
UNTIL = typer.Option(None, "--until", help="Same forms; a bare date includes that whole day.")
FORMAT = typer.Option(Format.table, "--format", "-f", help="table, json or csv.")
OUTPUT = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout.")
DIRECT_DB = typer.Option(
    True, "--direct-db/--no-direct-db",
    help="On a database tracking URI (sqlite, postgresql, mysql) read MLflow's tables "
    "directly, read-only (several times faster on large experiments); --no-direct-db goes "
    "through MLflow's search_runs API.")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {render.printable(message)}", err=True)
    return typer.Exit(code=code)


def _report_failure(exc: ReportError) -> typer.Exit:
    return _fail(str(exc), code=2 if isinstance(exc, ReportOptionError) else 1)


def _check_writable(option: str, path: Path | None) -> None:
    """Refuse an output path whose folder is missing before reading anything (exit 2)."""
    if path is None:
        return
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise _fail(f"{option} {path}: folder {folder} {what}", code=2)
    if path.is_dir():
        raise _fail(f"{option} {path} is a folder; give a file name", code=2)


def _write_failure(path: Path, exc: OSError) -> typer.Exit:
    return _fail(f"cannot write {path}: {exc.strerror or exc}")


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


def _emit(fmt: Format, output: Path | None, text: Callable[[], str],
          table: Callable[[Console], None]) -> None:
    if output is None:
        if fmt is Format.table:
            console = Console()
            if not console.is_terminal:  # pipes and files: full-width rows, no colour codes
                console = Console(width=240, no_color=True)
            table(console)
        else:
            typer.echo(text(), nl=False)
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as handle:
            if fmt is Format.table:
                table(Console(file=handle, width=240, no_color=True, color_system=None))
            else:
                handle.write(text())
    except OSError as exc:
        raise _write_failure(output, exc) from None
    typer.echo(f"Wrote {output}", err=True)


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
    _http_fail_fast()
    _check_writable("--output", output)
    _check_writable("--plot", plot)
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
    text = render.cost_report_json if fmt is Format.json else render.cost_report_csv
    _emit(fmt, output, lambda: text(report), lambda c: render.print_cost_report(report, c))
    if plot is not None and not report.empty:
        try:
            plot_cost_per_day(report, plot)
        except OSError as exc:
            raise _write_failure(plot, exc) from None
        except ReportError as exc:
            raise _fail(f"cannot write plot {plot}: {exc}") from None
        typer.echo(f"Wrote {plot}", err=True)


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
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed (evaluation runs)."),
) -> None:
    """Side-by-side measures with absolute and relative deltas, overall and per node.

    When both sides name evaluation runs (run ids, or filters matching them), compare
    their example runs and add accuracy and cost per correct answer, paired by example
    id, with paired-bootstrap 95% intervals and a verdict.
    """
    _http_fail_fast()
    _check_writable("--output", output)
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
                                  progress=progress, direct_db=direct_db)
    except ReportError as exc:
        raise _report_failure(exc) from None
    if fmt is not Format.table:
        for line in [*result.notes, *render.empty_side_lines(result)]:
            typer.echo(line, err=True)
    if quality is None:
        text = render.comparison_json if fmt is Format.json else render.comparison_csv
        _emit(fmt, output, lambda: text(result), lambda c: render.print_comparison(result, c))
        return
    q = quality

    def json_text() -> str:
        return json.dumps({**result.to_dict(), "quality": q.to_dict()}, indent=2)

    def csv_text() -> str:
        return render.comparison_csv(result) + f"quality,verdict,,,,{q.verdict}\r\n"

    def tables(console: Console) -> None:
        render.print_comparison(result, console)
        print_quality(q, console)

    _emit(fmt, output, json_text if fmt is Format.json else csv_text, tables)


__all__ = ["app", "resolve_tracking_uri"]
