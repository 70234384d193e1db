"""Evaluation datasets: JSON Lines or CSV files of inputs plus an expected output.

A JSONL line is ``{"id": "q1", "inputs": {"question": "..."}, "expected": "..."}``;
without an ``inputs`` object every key other than ``id`` and ``expected`` is an input.
A CSV file has a header row with the same rule (``id`` and ``expected`` columns, the
rest inputs). ``id`` is optional (the line number is used) and must be unique: it is
how two evaluations of the same dataset are paired example by example.

Every error names the file, the line and the field, and the whole file is checked
before anything runs, so a bad row never costs a half-finished evaluation.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configurable_agents.scoring.example import Example

__all__ = ["Dataset", "DatasetError", "Example", "digest_of", "load_dataset"]

ID_FIELD = "id"
EXPECTED_FIELD = "expected"
INPUTS_FIELD = "inputs"
MAX_DEPTH = 100  # nesting levels of one JSON line (deeper is refused, never recursed into)


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the line and field."""


@dataclass(frozen=True, slots=True)
class Dataset:
    """Examples plus the identity MLflow shows in its Dataset column (name, digest, source)."""

    name: str
    examples: tuple[Example, ...]
    source: str = ""
    digest: str = field(default="")

    def __post_init__(self) -> None:
        if not self.digest:
            object.__setattr__(self, "digest", digest_of(self.examples))

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.examples)

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, Any]], name: str = "dataset", source: str = ""
    ) -> Dataset:
        """Build from dicts shaped like JSONL lines (row numbers start at 1)."""
        examples = _examples(
            ((i, dict(r)) for i, r in enumerate(records, start=1)), where=name, kind="row"
        )
        return cls(name=name, examples=tuple(examples), source=source)


def digest_of(examples: Sequence[Example]) -> str:
    """A short, stable content hash: the same rows give the same digest on every machine."""
    canonical = json.dumps(
        [[e.id, e.inputs, e.expected] for e in examples], sort_keys=True, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def load_dataset(path: str | Path, name: str | None = None) -> Dataset:
    """Read a ``.jsonl`` / ``.json`` (one object per line) or ``.csv`` dataset file."""
    file = Path(path)
    if not file.is_file():
        raise DatasetError(f"{file}: dataset file not found")
    suffix = file.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        rows = _jsonl_rows(file)
        kind = "line"
    elif suffix == ".csv":
        rows = _csv_rows(file)
        kind = "line"
    else:
        raise DatasetError(f"{file}: unsupported dataset format {suffix or '(none)'!r}; "
                           "use .jsonl or .csv")
    examples = _examples(rows, where=str(file), kind=kind)
    if not examples:
        raise DatasetError(f"{file}: the dataset has no examples")
    return Dataset(name=name or file.stem, examples=tuple(examples),
                   source=str(file.resolve()))


def _text(file: Path) -> str:
    """The whole file as text; a byte that is not UTF-8 is one error naming its line."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{file}: cannot read the dataset ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DatasetError(f"{file} line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                           f"column {column}); save the file as UTF-8") from None


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _jsonl_rows(file: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(_text(file).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{file} line {number}: invalid JSON ({exc.msg} at column "
                               f"{exc.colno})") from None
        except RecursionError:
            raise DatasetError(f"{file} line {number}: JSON nested deeper than {MAX_DEPTH} "
                               "levels") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{file} line {number}: expected a JSON object, got "
                               f"{type(row).__name__}")
        if _depth(row) > MAX_DEPTH:
            raise DatasetError(f"{file} line {number}: JSON nested deeper than {MAX_DEPTH} "
                               "levels")
        yield number, row


def _csv_rows(file: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(_text(file), newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DatasetError(f"{file} line {reader.line_num or 1}: {_csv_problem(exc)}") from None
    if not header:
        raise DatasetError(f"{file} line 1: missing header row")
    header = [h.strip() for h in header]
    if EXPECTED_FIELD not in header:
        raise DatasetError(f"{file} line 1: field {EXPECTED_FIELD!r} is missing from the "
                           "header")
    while True:
        start = reader.line_num + 1  # the physical line the next record starts on
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DatasetError(f"{file} line {start}: {_csv_problem(exc)}") from None
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise DatasetError(f"{file} line {start}: {len(cells)} fields, the header "
                               f"has {len(header)}")
        yield start, dict(zip(header, cells, strict=True))


def _csv_problem(exc: csv.Error) -> str:
    text = str(exc)
    if "field limit" in text:
        return f"a field is longer than {csv.field_size_limit()} characters"
    return f"invalid CSV ({text})"


def _examples(
    rows: Iterable[tuple[int, dict[str, Any]]], *, where: str, kind: str
) -> list[Example]:
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for number, row in rows:
        at = f"{where} {kind} {number}"
        if EXPECTED_FIELD not in row:
            raise DatasetError(f"{at}: field {EXPECTED_FIELD!r} is missing")
        raw_id = row.get(ID_FIELD)
        if raw_id is None or raw_id == "":
            example_id = str(number)
        elif isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
            example_id = str(raw_id)
        else:
            raise DatasetError(f"{at}: field {ID_FIELD!r} must be a string or an integer")
        if example_id in seen:
            raise DatasetError(f"{at}: field {ID_FIELD!r}: duplicate id {example_id!r} (first "
                               f"on {kind} {seen[example_id]})")
        seen[example_id] = number
        if INPUTS_FIELD in row:
            inputs = row[INPUTS_FIELD]
            if not isinstance(inputs, dict) or not inputs:
                raise DatasetError(f"{at}: field {INPUTS_FIELD!r} must be a non-empty object")
        else:
            inputs = {k: v for k, v in row.items() if k not in (ID_FIELD, EXPECTED_FIELD)}
            if not inputs:
                raise DatasetError(f"{at}: no input fields (add {INPUTS_FIELD!r} or columns "
                                   f"besides {ID_FIELD!r} and {EXPECTED_FIELD!r})")
        bad = next((k for k in inputs if not isinstance(k, str) or not k.strip()), None)
        if bad is not None:
            raise DatasetError(f"{at}: field {INPUTS_FIELD!r}: input names must be non-empty "
                               "strings")
        examples.append(Example(id=example_id, inputs=dict(inputs), expected=row[EXPECTED_FIELD]))
    return examples
