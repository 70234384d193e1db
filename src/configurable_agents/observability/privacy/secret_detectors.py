"""Detectors of credentials: private keys, API keys and tokens, passwords in URLs.

They run before user patterns and PII, so ``sk-ant-`` is never half-matched by ``sk-``
and the digits inside a key are never taken for a phone number. Keys with a vendor
prefix are matched by that prefix; secrets without one (AWS secret keys, bearer
tokens, URL passwords) only after the name or syntax that introduces them.
"""

from __future__ import annotations

from configurable_agents.observability.privacy.checks import PEM_BEGIN, pem_validator
from configurable_agents.observability.privacy.rules import Detector, compile_rule

SECRET_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "private_key",
        "<PRIVATE_KEY>",
        (
            compile_rule(
                PEM_BEGIN,
                validate_factory=pem_validator,
                triggers=("PRIVATE KEY",),
            ),
        ),
        secret=True,
    ),
    Detector(
        "jwt",
        "<JWT>",
        (
            compile_rule(
                r"eyJ(?<![\w-]eyJ)[A-Za-z0-9_-]{5,}\.ey[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
                triggers=("eyJ",),
            ),
        ),
        secret=True,
    ),
    Detector(
        "anthropic_key",
        "<ANTHROPIC_KEY>",
        (compile_rule(r"sk-ant-(?<![A-Za-z0-9]sk-ant-)[A-Za-z0-9_-]{20,}", triggers=("sk-ant-",)),),
        secret=True,
    ),
    Detector(
        "openai_key",
        "<OPENAI_KEY>",
        # Keys are random: one with no digit in its first 200 characters is a word
        # such as "sk-learn-compatible-estimators".
        (
            compile_rule(
                r"sk-(?<![A-Za-z0-9]sk-)(?!ant-)(?=[A-Za-z_-]{0,200}[0-9])[A-Za-z0-9_-]{20,}",
                triggers=("sk-",),
            ),
        ),
        secret=True,
    ),
    Detector(
        "google_api_key",
        "<GOOGLE_API_KEY>",
        (
            compile_rule(
                r"AIza(?<![A-Za-z0-9_-]AIza)[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])",
                triggers=("AIza",),
            ),
        ),
        secret=True,
    ),
    Detector(
        "aws_access_key",
        "<AWS_ACCESS_KEY>",
        (
            compile_rule(
                r"(?:AKIA|ASIA|ABIA|ACCA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])",
                triggers=("AKIA", "ASIA", "ABIA", "ACCA"),
            ),
        ),
        secret=True,
    ),
    Detector(
        "aws_secret_key",
        "<AWS_SECRET_KEY>",
        # The 40-character secret has no prefix: found only after its usual name.
        (
            compile_rule(
                r"(?i:aws_?secret_?(?:access_?)?key)[\"']?\s{0,5}[:=]\s{0,5}[\"']?"
                r"(?P<v>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
                group="v",
                triggers=("ecret", "ECRET"),
            ),
        ),
        secret=True,
    ),
    Detector(
        "github_token",
        "<GITHUB_TOKEN>",
        (
            compile_rule(
                r"(?:gh[pousr]_(?<![A-Za-z0-9_]gh._)[A-Za-z0-9]{36,255}"
                r"|github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])",
                triggers=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
            ),
        ),
        secret=True,
    ),
    Detector(
        "bearer_token",
        "<BEARER_TOKEN>",
        # Only the token is replaced ("Authorization: Bearer <BEARER_TOKEN>"); it must
        # hold a digit, so prose ("the bearer instrument") is left alone.
        (
            compile_rule(
                r"(?:Bearer|bearer|BEARER)(?<!\w......)[ \t]+"
                r"(?P<v>(?=[A-Za-z._~+/=-]{0,500}[0-9])[A-Za-z0-9._~+/=-]{8,})",
                group="v",
                triggers=("earer", "EARER"),
            ),
        ),
        secret=True,
    ),
    Detector(
        "url_password",
        "<PASSWORD>",
        # postgresql://user:secret@host/db -> postgresql://user:<PASSWORD>@host/db
        (compile_rule(r"://[^\s/:@]{1,256}:(?P<v>[^\s/@]{1,256})@", group="v", triggers=("://",)),),
        secret=True,
    ),
)
