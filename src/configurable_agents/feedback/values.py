"""What a feedback may be: a boolean, a finite number or a short label, under a usable name.

Feedback values arrive from people (the CLI) and programs (the Python API): they are data,
checked once here, so the writer can trust them. Booleans count as 1/0 in the run metric
that averages a feedback, numbers as themselves; labels are kept as a run tag.
"""

from __future__ import annotations

import math
import re
from typing import Final

FeedbackValue = bool | int | float | str

MAX_NAME_CHARS: Final = 120
MAX_LABEL_CHARS: Final = 250
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-. :]*$")
_TRUE = frozenset({"true", "yes", "y", "pass", "thumbs_up", "up", "+1"})
_FALSE = frozenset({"false", "no", "n", "fail", "thumbs_down", "down", "-1"})
SOURCES: Final = ("human", "code", "llm_judge")


class FeedbackError(ValueError):
    """A feedback that cannot be recorded (bad id, name or value): one line for the user."""


def check_name(name: str) -> str:
    """A feedback name: letters, digits, ``_ - . : space``; no ``/`` (it would nest metrics)."""
    if not isinstance(name, str) or not name.strip():
        raise FeedbackError("feedback name is empty")
    name = name.strip()
    if len(name) > MAX_NAME_CHARS or not _NAME.match(name):
        raise FeedbackError(
            f"feedback name {name[:MAX_NAME_CHARS]!r}: use at most {MAX_NAME_CHARS} letters, "
            "digits, '_', '-', '.', ':' or spaces, starting with a letter, digit or '_'")
    return name


def check_value(value: object) -> FeedbackValue:
    """A value MLflow stores and we can average: bool, finite number, or a short label."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if not math.isfinite(float(value)):
            raise FeedbackError(f"feedback value {value!r} is not a finite number")
        return value
    if isinstance(value, str):
        label = value.strip()
        if not label:
            raise FeedbackError("feedback value is empty")
        if len(label) > MAX_LABEL_CHARS or not label.isprintable():
            raise FeedbackError(
                f"feedback label must be printable and at most {MAX_LABEL_CHARS} characters")
        return label
    raise FeedbackError(f"feedback value of type {type(value).__name__}: use a bool, a number "
                        "or a label")


def parse_value(text: str) -> FeedbackValue:
    """A CLI value: ``true``/``yes``/``pass``... -> bool, ``0.8`` -> number, else a label."""
    folded = text.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    try:
        number = int(folded)
    except ValueError:
        try:
            number = float(folded)
        except ValueError:
            return check_value(text)
    return check_value(number)


def numeric(value: object) -> float | None:
    """The number a value counts as in a run's mean (bools 1/0), None for a label."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def check_source(source: str) -> str:
    folded = source.strip().lower()
    if folded not in SOURCES:
        raise FeedbackError(f"feedback source {source!r}: use one of {', '.join(SOURCES)}")
    return folded
