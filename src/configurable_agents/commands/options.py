"""The one output convention every command follows (issue #29).

A command with output takes ``--format table|json|csv`` and ``-o/--output FILE``, and ends
with one :func:`emit` call::

    from configurable_agents.commands.options import FORMAT, OUTPUT, Format, check_output, emit

    @app.command("thing")
    def thing(fmt: Format = FORMAT, output: Path | None = OUTPUT) -> None:
        check_output(output)                       # a bad path fails before any work (exit 2)
        rows = compute()                           # errors: raise fail("one line", code)
        emit(fmt, output, data=lambda: rows, table=lambda console: console.print(...))

Why one place: machine output (json, csv) must be *only* the data, on stdout, so
``| jq`` and ``| python -c 'import csv'`` always work; notes, progress and errors go to
stderr. ``table`` is for people: colours on a terminal, plain full-width rows when piped.
This module imports only typer and rich, so ``--help`` stays fast.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


FORMAT = typer.Option(
    Format.table, "--format", "-f", case_sensitive=False,
    help="table (for people), json or csv (only the data, on stdout or in --output).")
OUTPUT = typer.Option(None, "--output", "-o", help="Write to FILE instead of stdout.")
JSON_ALIAS = typer.Option(False, "--json", hidden=True, help="Old spelling of --format json.")


def resolve_format(fmt: Format, as_json: bool) -> Format:
    """``--json`` (the old spelling) means ``--format json``."""
    return Format.json if as_json else fmt


def printable(value: str) -> str:
    """One line, no terminal control characters: messages quote untrusted values."""
    if value.isprintable():
        return value
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in value)


def fail(message: str, code: int = 1) -> typer.Exit:
    """``raise fail(...)``: one line on stderr, exit ``code`` (2: input the user can fix)."""
    typer.echo(f"error: {printable(' '.join(message.split()))}", err=True)
    return typer.Exit(code=code)


def check_output(path: Path | None, option: str = "--output") -> None:
    """Refuse an output path whose folder is missing before doing any work (exit 2)."""
    if path is None:
        return
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise fail(f"{option} {path}: folder {folder} {what}", code=2)
    if path.is_dir():
        raise fail(f"{option} {path} is a folder; give a file name", code=2)


def stdout_console() -> Console:
    """Colours on a terminal; plain, full-width rows when piped (no escape codes in files)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(width=240, no_color=True, color_system=None, highlight=False)
    return console


@contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner on stderr while long work runs: on a terminal only, nothing when piped."""
    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        yield
        return
    with console.status(printable(message)):
        yield


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n"


def _flat(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value, default=str, ensure_ascii=False)
        else:
            out[name] = value
    return out


def to_csv(data: Any) -> str:
    """A record or a list of records as CSV; nested keys become ``a.b`` columns."""
    records: Iterable[Any] = [data] if isinstance(data, Mapping) else data
    rows = [_flat(r) if isinstance(r, Mapping) else {"value": r} for r in records]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def emit(
    fmt: Format,
    output: Path | None,
    *,
    data: Callable[[], Any],
    table: Callable[[Console], None],
    csv_text: Callable[[], str] | None = None,
    json_text: Callable[[], str] | None = None,
) -> None:
    """Print (or write to ``output``) the result in ``fmt``.

    ``data`` returns JSON-ready data (used for json, and for csv unless ``csv_text`` is
    given); ``table`` prints the human view on a console.
    """
    if fmt is Format.table:
        if output is None:
            table(stdout_console())
            return
        render: Callable[[], str] | None = None
    elif fmt is Format.json:
        render = json_text or (lambda: to_json(data()))
    else:
        render = csv_text or (lambda: to_csv(data()))
    if output is None:
        assert render is not None
        typer.echo(render(), nl=False)
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as handle:
            if render is None:
                table(Console(file=handle, width=240, no_color=True, color_system=None))
            else:
                handle.write(render())
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from None
    typer.echo(f"Wrote {output}", err=True)
