"""Per-invocation experiment names: ``experiment_name: "{tenant_id}_workflows"``.

Template values come from the invocation's metadata and are validated before
use, so a missing or malformed tenant can never land in another tenant's
experiment: it goes to the quarantine experiment (with a warning) or, when the
config says ``tenant_fail_closed: true``, is not logged at all.

A rejected value is untrusted input (it may come from an end user through the
app): errors name it by a short hash, never by the raw text, so a log line
cannot carry a forged newline, a terminal escape or someone's e-mail address.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping
from typing import Any

# Used with fullmatch: "$" would also accept a trailing newline ("acme\n").
SAFE_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
SAFE_VALUE_RULE = "letters, digits, '_', '.', '-', starting with a letter or digit, at most 64"


class TenantError(ValueError):
    """A template field is missing or not a safe identifier.

    ``fingerprint`` identifies a rejected value (to match it against the app's own
    logs) without repeating it; it is empty when the value is missing.
    """

    def __init__(self, message: str, *, field: str, fingerprint: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.fingerprint = fingerprint


def fingerprint(value: str) -> str:
    """A short, stable hash of a value that must not be written out as it is."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def is_safe_value(text: str) -> bool:
    return SAFE_VALUE.fullmatch(text) is not None


def template_fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def resolve_experiment_name(template: str, metadata: Mapping[str, Any]) -> str:
    """The experiment for one invocation; raises TenantError for a missing/invalid value."""
    fields = template_fields(template)
    if not fields:
        return template
    values: dict[str, str] = {}
    for field in fields:
        value = metadata.get(field)
        if value is None or value == "":
            raise TenantError(
                f"metadata has no '{field}' for experiment_name {template!r}", field=field
            )
        text = str(value)
        if not is_safe_value(text):
            digest = fingerprint(text)
            raise TenantError(
                f"metadata '{field}' (value sha256:{digest}) is not a safe name "
                f"({SAFE_VALUE_RULE} characters)",
                field=field,
                fingerprint=digest,
            )
        values[field] = text
    return template.format(**values)
