"""The base of every config model."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, with a spelling hint."""

    # hide_input_in_errors: a raw ValidationError must never echo a tracking URI's password.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        allowed = set(cls.model_fields)
        for field in cls.model_fields.values():
            if field.alias:
                allowed.add(field.alias)
        unknown = [k for k in data if isinstance(k, str) and k not in allowed]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            valid = ", ".join(sorted(allowed))
            # A typed error carrying the key lets the loader point at the key's own YAML line.
            raise PydanticCustomError(
                "unknown_key",
                "unknown key '{key}'{hint}; valid keys are: {valid}",
                {"key": key, "hint": hint, "valid": valid},
            )
        return data
