"""Per-invocation experiment names: ``experiment_name: "{tenant_id}_workflows"``.

Template values come from the invocation's metadata and are validated before
use, so a missing or malformed tenant can never land in another tenant's
experiment: it goes to the quarantine experiment (with a warning) or, when the
config says ``tenant_fail_closed: true``, is not logged at all.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

SAFE_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class TenantError(ValueError):
    """A template field is missing or not a safe identifier."""


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
            raise TenantError(f"metadata has no '{field}' for experiment_name {template!r}")
        text = str(value)
        if not SAFE_VALUE.match(text):
            raise TenantError(
                f"metadata '{field}'={text[:80]!r} is not a safe name (letters, digits, _ . -, "
                "at most 64 characters)"
            )
        values[field] = text
    return template.format(**values)
