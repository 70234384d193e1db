"""Scorers: compare one output with the expected answer and return a score in [0, 1].

A scorer is any object with a ``name`` and ``score(example, output, config) -> Score``;
``config`` is a LangChain ``RunnableConfig`` a scorer that calls a model must pass on
(the LLM judge does: its calls are then logged, and costed, apart from the app's).
The first scorer of an evaluation decides which answers count as *correct*
(score >= 0.5): accuracy and cost per correct answer are computed from it.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from configurable_agents.scoring.example import Example

CORRECT_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Score:
    """A score in [0, 1]; ``unscorable`` when the scorer could not decide (e.g. a judge
    reply without a structured verdict): it counts as not correct and is counted apart."""

    value: float
    rationale: str = ""
    unscorable: bool = False

    @property
    def correct(self) -> bool:
        return self.value >= CORRECT_THRESHOLD


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, example: Example, output: Any, config: dict[str, Any]) -> Score: ...


def normalize(text: Any) -> str:
    """Case-, accent- and whitespace-insensitive form, trailing punctuation dropped."""
    folded = unicodedata.normalize("NFKC", str(text)).casefold()
    return " ".join(folded.split()).strip(" .!?;:'\"")


def _from_bool(ok: bool, yes: str, no: str) -> Score:
    return Score(1.0 if ok else 0.0, yes if ok else no)


@dataclass(frozen=True)
class ExactMatch:
    """Output equals the expected answer (after :func:`normalize` unless ``strict``)."""

    strict: bool = False
    name: str = "exact_match"

    def score(self, example: Example, output: Any, config: dict[str, Any]) -> Score:
        if self.strict:
            ok = str(output) == str(example.expected)
        else:
            ok = normalize(output) == normalize(example.expected)
        return _from_bool(ok, "equal to the expected answer", "differs from the expected answer")


@dataclass(frozen=True)
class Contains:
    """The expected answer appears in the output as a whole word or phrase (case-insensitive).

    Whole words, so that an expected ``4`` is not found in ``14``.
    """

    name: str = "contains"

    def score(self, example: Example, output: Any, config: dict[str, Any]) -> Score:
        expected = normalize(example.expected)
        if not expected:
            return Score(0.0, "empty expected answer")
        pattern = rf"(?<!\w){re.escape(expected)}(?!\w)"
        ok = re.search(pattern, normalize(output)) is not None
        return _from_bool(ok, "contains the expected answer", "expected answer not found")


@dataclass(frozen=True)
class RegexMatch:
    """The output matches ``pattern``; with no pattern, the expected value is the pattern."""

    pattern: str | None = None
    name: str = "regex"

    def __post_init__(self) -> None:
        if self.pattern is not None:
            re.compile(self.pattern)  # a bad pattern fails when the scorer is built

    def score(self, example: Example, output: Any, config: dict[str, Any]) -> Score:
        pattern = self.pattern if self.pattern is not None else str(example.expected)
        try:
            found = re.search(pattern, str(output)) is not None
        except re.error as exc:
            return Score(0.0, f"invalid pattern: {exc}")
        return _from_bool(found, "matches the pattern", "does not match the pattern")


def _json_value(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("```"):
            text = text.strip("`").removeprefix("json").strip()
        return json.loads(text)
    return value


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit():
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value[part]
        else:
            raise KeyError(part)
    return value


@dataclass(frozen=True)
class JsonFieldMatch:
    """The output (JSON text or a dict) has ``field`` (dotted path) equal to the expected.

    The expected value may be the field's value itself, or a JSON object carrying the
    same path.
    """

    field: str
    name: str = "json_field"

    def score(self, example: Example, output: Any, config: dict[str, Any]) -> Score:
        try:
            actual = _dig(_json_value(output), self.field)
        except (ValueError, KeyError, IndexError, TypeError):
            return Score(0.0, f"output has no JSON field {self.field!r}")
        expected = example.expected
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            expected = _dig(_json_value(expected), self.field)
        ok = actual == expected or normalize(actual) == normalize(expected)
        return _from_bool(ok, f"{self.field} matches", f"{self.field} = {actual!r}")


_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE]-?\d+)?")


def _last_number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    found = _NUMBER.findall(str(value))
    return float(found[-1].replace(",", "")) if found else None


@dataclass(frozen=True)
class NumericTolerance:
    """The last number in the output is within ``abs_tol`` or ``rel_tol`` of the expected."""

    abs_tol: float = 1e-6
    rel_tol: float = 0.0
    name: str = "numeric"

    def score(self, example: Example, output: Any, config: dict[str, Any]) -> Score:
        actual, expected = _last_number(output), _last_number(example.expected)
        if expected is None:
            return Score(0.0, "expected value is not a number")
        if actual is None:
            return Score(0.0, "no number in the output")
        ok = math.isclose(actual, expected, rel_tol=self.rel_tol, abs_tol=self.abs_tol)
        return _from_bool(ok, f"{actual:g} within tolerance", f"{actual:g} != {expected:g}")


@dataclass(frozen=True)
class CallableScorer:
    """A user function ``fn(output, expected, inputs)`` returning a bool, a number or a Score."""

    fn: Callable[[Any, Any, dict[str, Any]], Any]
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", getattr(self.fn, "__name__", "custom"))

    def score(self, example: Example, output: Any, config: dict[str, Any]) -> Score:
        result = self.fn(output, example.expected, example.inputs)
        if isinstance(result, Score):
            return result
        if isinstance(result, bool):
            return Score(1.0 if result else 0.0)
        if isinstance(result, int | float):
            return Score(float(result))
        raise TypeError(f"scorer {self.name!r} returned {type(result).__name__}; "
                        "return a bool, a number or a Score")


def as_scorer(value: Scorer | Callable[..., Any]) -> Scorer:
    """Accept scorer objects and plain functions alike."""
    if isinstance(value, Scorer):
        return value
    if callable(value):
        return CallableScorer(value)
    raise TypeError(f"not a scorer: {value!r}")


def builtin(spec: str) -> Scorer:
    """A built-in scorer from a CLI spec: ``exact_match``, ``contains``, ``regex[:PATTERN]``,
    ``json_field:PATH``, ``numeric[:ABS_TOL]``."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "exact_match":
        return ExactMatch()
    if kind == "contains":
        return Contains()
    if kind == "regex":
        try:
            return RegexMatch(arg or None)
        except re.error as exc:
            raise ValueError(f"scorer {spec!r}: invalid pattern ({exc})") from None
    if kind == "json_field":
        if not arg:
            raise ValueError("scorer json_field needs a field path: json_field:answer")
        return JsonFieldMatch(arg)
    if kind == "numeric":
        try:
            return NumericTolerance(abs_tol=float(arg)) if arg else NumericTolerance()
        except ValueError:
            raise ValueError(f"scorer {spec!r}: tolerance must be a number") from None
    raise ValueError(f"unknown scorer {kind!r}; use exact_match, contains, regex, "
                     "json_field:PATH, numeric[:TOL] or llm_judge")
