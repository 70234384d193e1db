"""Configuration of PII / secret redaction (``observability.mlflow.redaction``).

Lives in ``config`` so ``MLFlowConfig`` can embed it without importing the redactor.
"""

from __future__ import annotations

import difflib
import re

from pydantic import Field, field_validator

from configurable_agents.config.base import StrictModel
from configurable_agents.config.trusted_code import check_import_path

# The built-in detectors, in the order they run (the redactor checks it matches).
DETECTOR_NAMES: tuple[str, ...] = (
    "private_key",
    "jwt",
    "anthropic_key",
    "openai_key",
    "google_api_key",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "gitlab_token",
    "stripe_key",
    "slack_token",
    "slack_webhook",
    "huggingface_token",
    "bearer_token",
    "basic_auth",
    "url_password",
    "email",
    "iban",
    "credit_card",
    "ssn",
    "ip_address",
    "phone",
)

_EXTRA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


class RedactionConfig(StrictModel):
    """How redaction is tuned: extra patterns, detectors switched off, allowed values.

    A custom callable (e.g. a Presidio analyzer) is given to ``Redactor(custom=fn)``
    in code, or here as an import path ``"package.module:function"`` when the process
    opts in (``CONFIGURABLE_AGENTS_ALLOW_CONFIG_CODE``; see config/trusted_code.py).
    """

    extra_patterns: dict[str, str] = Field(
        default_factory=dict,
        description="name -> regex; matches become <NAME> (upper-cased).",
    )
    disabled_detectors: list[str] = Field(
        default_factory=list,
        description=f"Built-in detectors to skip: {', '.join(DETECTOR_NAMES)}.",
    )
    allow_list: list[str] = Field(
        default_factory=list, description="Exact values never redacted (e.g. a support e-mail)."
    )
    custom: str | None = Field(
        default=None,
        description="Import path 'package.module:function' of a str -> str redactor run last; "
        "needs CONFIGURABLE_AGENTS_ALLOW_CONFIG_CODE to list its module (never the standard "
        "library). Regex detectors (extra_patterns) need no code.",
    )

    @field_validator("extra_patterns")
    @classmethod
    def _check_extra_patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not _EXTRA_NAME.fullmatch(name):
                raise ValueError(
                    f"extra_patterns name {name!r} must be a letter followed by letters, digits "
                    "or '_' (it becomes the placeholder <NAME>)"
                )
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"extra_patterns[{name!r}]: invalid regex {pattern!r}: {exc.msg}"
                    + (f" at position {exc.pos}" if exc.pos is not None else "")
                ) from None
            if compiled.match("") is not None:
                raise ValueError(
                    f"extra_patterns[{name!r}]: regex {pattern!r} matches the empty string, "
                    "so it would insert placeholders everywhere; use + instead of *"
                )
        return value

    @field_validator("disabled_detectors")
    @classmethod
    def _check_disabled(cls, value: list[str]) -> list[str]:
        names = []
        for raw in value:
            name = raw.strip().strip("<>").lower()
            if name not in DETECTOR_NAMES:
                close = difflib.get_close_matches(name, DETECTOR_NAMES, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(
                    f"unknown detector {raw!r}{hint}; known detectors: {', '.join(DETECTOR_NAMES)}"
                )
            names.append(name)
        return names

    @field_validator("custom")
    @classmethod
    def _check_custom(cls, value: str | None) -> str | None:
        # Code named in a config file runs only with the operator's opt-in, never for
        # standard-library or code-runner targets (see config/trusted_code.py).
        return check_import_path(value) if value is not None else None
