"""PII and secret redaction for every string that leaves the process.

The exporter thread passes params, tags, artifacts (prompts, responses, inputs,
outputs, tracebacks) and error messages through one :class:`Redactor` before they
reach MLflow. Matches are replaced by typed placeholders such as ``<EMAIL>`` so a
reader still sees *what* was there, never the value.

Why it is built this way:

The detectors live beside this module, one concept per module: ``checks``
(validators), ``rules`` (compiled rules and the cheap gates that skip them),
``secret_detectors`` and ``pii_detectors`` (the built-in patterns). This module
applies them.

- **Validated, not just matched.** Numbers are everywhere in LLM traffic (order
  ids, timestamps, versions, prices). Candidates are checked before they are
  replaced: credit cards by Luhn and issuer prefix, IBANs by country length and
  mod-97, SSNs by the ranges the SSA never issues, IP addresses by
  :mod:`ipaddress`. This keeps the false-positive rate low without an NLP model.
- **Ordered.** Detectors run in a fixed order: private keys and tokens first (so
  ``sk-ant-`` is never half-matched by ``sk-``, and the digits inside a key are
  never taken for a phone number), then user patterns, then PII, phone numbers
  last (the loosest shapes).
- **Linear time.** Every pattern is a sequence of bounded character classes; a
  repeated group always starts or ends with a mandatory delimiter, so no input can
  make the regex engine backtrack exponentially. Unbounded scans are capped
  (a PEM block without its END line is searched for at most 64 KiB).
- **Cheap when there is nothing to find.** Each detector names the substrings one
  of its matches must contain (``@`` for e-mails, a digit for numbers, ``sk-`` for
  keys...); a string missing them is not scanned by that detector at all.
- **Never raises.** Redaction runs on a background thread that must keep going:
  odd input (bytes, ``None``, objects) is converted, and an internal failure
  replaces the whole string with ``<REDACTION_FAILED>`` (fail closed).

Decisions a user may trip over are documented in docs/features/security.md:
a bare ``1.2.3.4`` is an IPv4 address (``v1.2.3.4`` and
five-part versions are not); bare 9- or 10-digit runs are not SSNs or phone
numbers unless a context word (``SSN``) or a ``+`` says so.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from configurable_agents.config.redaction_config import DETECTOR_NAMES, RedactionConfig
from configurable_agents.config.trusted_code import load_callable
from configurable_agents.observability.privacy.checks import (
    Validator,
    iban_is_valid,
    luhn_is_valid,
)
from configurable_agents.observability.privacy.invisible import (
    INVISIBLE,
    Removed,
    Replacements,
    move_through,
    restore_invisible,
    strip_invisible,
)
from configurable_agents.observability.privacy.pii_detectors import PII_DETECTORS
from configurable_agents.observability.privacy.rules import (
    Detector,
    Rule,
    compile_rule,
    count_digits,
    gate_pattern,
)
from configurable_agents.observability.privacy.secret_detectors import SECRET_DETECTORS

__all__ = [
    "DETECTOR_NAMES",
    "REDACTION_FAILED",
    "RedactionConfig",
    "Redactor",
    "iban_is_valid",
    "luhn_is_valid",
]

logger = logging.getLogger(__name__)

REDACTION_FAILED = "<REDACTION_FAILED>"
_MIN_LENGTH = 6  # the shortest thing we detect is an e-mail such as a@b.co
_MAX_DEPTH = 100  # nesting depth of redact_obj before a value is dropped

BUILTINS: tuple[Detector, ...] = (*SECRET_DETECTORS, *PII_DETECTORS)
assert tuple(d.name for d in BUILTINS) == DETECTOR_NAMES, "update config/redaction_config.py"


# --------------------------------------------------------------------------- config


# ------------------------------------------------------------------------- redactor


class Redactor:
    """Replaces PII and secrets in strings and nested JSON-like objects.

    Thread-safe: patterns are compiled once and shared; the running ``counts`` are
    updated under a lock once per call.
    """

    def __init__(
        self,
        config: RedactionConfig | Mapping[str, Any] | None = None,
        *,
        custom: Callable[[str], str] | None = None,
    ) -> None:
        if config is None:
            config = RedactionConfig()
        elif not isinstance(config, RedactionConfig):
            config = RedactionConfig.model_validate(dict(config))
        self.config = config
        self._allow = frozenset(config.allow_list)
        if custom is None and config.custom:
            custom = load_callable(config.custom)
        self._custom = custom
        self._detectors = self._build(config)
        self._gate = gate_pattern(self._detectors)
        self._triggers = tuple({t for d in self._detectors for r in d.rules for t in r.triggers})
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._warned = False

    @staticmethod
    def _build(config: RedactionConfig) -> tuple[Detector, ...]:
        extras = [
            Detector(
                name.lower(),
                f"<{name.upper()}>",
                (compile_rule(pattern),),
            )
            for name, pattern in config.extra_patterns.items()
        ]
        # A user pattern named like a built-in replaces it.
        skip = set(config.disabled_detectors) | {d.name for d in extras}
        active = [d for d in BUILTINS if d.name not in skip]
        secrets = [d for d in active if d.secret]
        pii = [d for d in active if not d.secret]
        return (*secrets, *extras, *pii)

    @property
    def detector_names(self) -> tuple[str, ...]:
        """Active detectors, in the order they run."""
        return tuple(d.name for d in self._detectors)

    @property
    def counts(self) -> dict[str, int]:
        """Replacements made so far, per detector (a snapshot)."""
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> dict[str, int]:
        """Return the counts so far and start again from zero."""
        with self._lock:
            snapshot = dict(self._counts)
            self._counts.clear()
        return snapshot

    # -- strings

    def redact(self, text: Any) -> str:
        """``text`` with every detected value replaced by its placeholder.

        Bytes are decoded as UTF-8 (invalid bytes replaced), ``None`` becomes ``""``
        and any other object its ``str()``.
        """
        out, counts = self.redact_with_counts(text)
        if counts:
            with self._lock:
                self._counts.update(counts)
        return out

    def redact_with_counts(self, text: Any) -> tuple[str, dict[str, int]]:
        """Like :meth:`redact`, also returning this call's counts (not added to ``counts``)."""
        counts: dict[str, int] = {}
        try:
            text = _as_text(text)
            out = self._apply(text, counts)
        except Exception:  # fail closed: a bug must not leak the value
            if not self._warned:
                self._warned = True
                logger.warning(
                    "redaction failed; value replaced by %s", REDACTION_FAILED, exc_info=True
                )
            counts["errors"] = counts.get("errors", 0) + 1
            return REDACTION_FAILED, counts
        return out, counts

    def _apply(self, text: str, counts: dict[str, int]) -> str:
        removed: Removed | None = None
        if not text.isascii() and INVISIBLE.search(text) is not None:
            text, removed = strip_invisible(text)
        if len(text) >= _MIN_LENGTH and self._gate.search(text) is not None:
            digits = -1  # counted on first need
            present = {t for t in self._triggers if t in text}
            for det in self._detectors:
                for rule in det.rules:
                    if rule.triggers and present.isdisjoint(rule.triggers):
                        continue
                    if rule.min_digits:
                        if digits < 0:
                            digits = count_digits(text)
                        if digits < rule.min_digits:
                            continue
                    if rule.pattern.search(text) is None:
                        continue
                    before = len(text)
                    replacements: Replacements | None = [] if removed else None
                    text = self._sub(rule, det, text, counts, replacements)
                    if replacements:
                        removed = move_through(removed or [], replacements)
                    if digits >= 0 and len(text) != before:
                        digits = -1  # placeholders removed some digits: count again
        if removed:
            text = restore_invisible(text, removed)
        if self._custom is not None and text:
            result = self._custom(text)
            if not isinstance(result, str):
                raise TypeError(f"custom redactor returned {type(result).__name__}, not str")
            if result != text:
                counts["custom"] = counts.get("custom", 0) + 1
            text = result
        return text

    def _sub(
        self,
        rule: Rule,
        det: Detector,
        text: str,
        counts: dict[str, int],
        replacements: Replacements | None = None,
    ) -> str:
        """Replace the rule's validated matches; a span may reach past its match.

        ``replacements`` (if given) receives each replaced span, so invisible
        characters taken out before matching can be put back in the right places.
        """
        validate = rule.validate_factory() if rule.validate_factory else rule.validate
        allow = self._allow
        pieces: list[str] = []
        pos = 0
        search = rule.pattern.search
        m = search(text)
        while m is not None:
            # A validator may trim a candidate that ran on into the next words
            # ("IBAN de89 ... 00 and iban nl91..."): search again right after what was
            # replaced, not after the whole candidate.
            resume = max(m.end(), m.start() + 1)
            span = self._span(rule, validate, m)
            if span is not None:
                start, end = span
                if start >= pos and not (allow and text[start:end] in allow):
                    pieces.append(text[pos:start])
                    pieces.append(det.placeholder)
                    if replacements is not None:
                        replacements.append((start, end, len(det.placeholder)))
                    pos = end
                    resume = max(end, m.start() + 1)
            m = search(text, resume) if resume <= len(text) else None
        if not pieces:
            return text
        pieces.append(text[pos:])
        counts[det.name] = counts.get(det.name, 0) + len(pieces) // 2
        return "".join(pieces)

    @staticmethod
    def _span(rule: Rule, validate: Validator | None, m: re.Match[str]) -> tuple[int, int] | None:
        """The part of a match to replace, or None when its validator rejects it."""
        if validate is not None:
            return validate(m)
        if rule.group is not None:
            return m.span(rule.group)
        return m.span()

    # -- objects

    def redact_obj(self, obj: Any) -> Any:
        """A copy of ``obj`` with every string (values and dict keys) redacted.

        Walks dicts, lists, tuples and sets. Bytes become redacted strings. Integers
        long enough to be a card or phone number are checked as text and replaced
        by the placeholder string when they match. Other objects are returned
        unchanged: serialize them (e.g. to JSON text) and call :meth:`redact`.
        """
        counts: dict[str, int] = {}
        try:
            out = self._walk(obj, counts, 0, set())
        except Exception:
            logger.warning("redaction of an object failed", exc_info=True)
            counts["errors"] = counts.get("errors", 0) + 1
            out = REDACTION_FAILED
        if counts:
            with self._lock:
                self._counts.update(counts)
        return out

    def _text(self, value: Any, counts: dict[str, int]) -> str:
        out, c = self.redact_with_counts(value)
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
        return out

    def _walk(self, obj: Any, counts: dict[str, int], depth: int, active: set[int]) -> Any:
        if isinstance(obj, str | bytes | bytearray):
            return self._text(obj, counts)
        if obj is None or isinstance(obj, bool | float):
            return obj
        if isinstance(obj, int):
            if abs(obj) < 10_000_000:  # shorter than any phone, card or SSN
                return obj
            text = str(obj)
            out = self._text(text, counts)
            return obj if out == text else out
        if not isinstance(obj, Mapping | list | tuple | set | frozenset):
            return obj
        if depth >= _MAX_DEPTH or id(obj) in active:
            return "<MAX_DEPTH>" if depth >= _MAX_DEPTH else "<CYCLE>"
        active.add(id(obj))
        try:
            if isinstance(obj, Mapping):
                result: dict[Any, Any] = {}
                for key, value in obj.items():
                    new_key = self._text(key, counts) if isinstance(key, str) else key
                    if new_key in result:  # two keys redacted to the same placeholder
                        n = 2
                        while f"{new_key}#{n}" in result:
                            n += 1
                        new_key = f"{new_key}#{n}"
                    result[new_key] = self._walk(value, counts, depth + 1, active)
                return result
            items: Iterable[Any] = (self._walk(v, counts, depth + 1, active) for v in obj)
            if isinstance(obj, list):
                return list(items)
            if isinstance(obj, tuple):
                return tuple(items)
            return type(obj)(items) if isinstance(obj, frozenset) else set(items)
        finally:
            active.discard(id(obj))


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)
