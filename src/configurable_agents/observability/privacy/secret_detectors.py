"""Detectors of credentials: private keys, API keys and tokens, passwords in URLs.

They run before user patterns and PII, so ``sk-ant-`` is never half-matched by ``sk-``
and the digits inside a key are never taken for a phone number. Keys with a vendor
prefix are matched by that prefix; secrets without one (AWS secret keys, bearer
tokens, URL passwords) only after the name or syntax that introduces them.
"""

from __future__ import annotations

from configurable_agents.observability.privacy.checks import (
    PEM_BEGIN,
    check_basic_auth,
    check_url_password,
    pem_validator,
)
from configurable_agents.observability.privacy.rules import Detector, compile_rule

GITLAB_PREFIXES = tuple(
    f"gl{kind}-" for kind in ("pat", "dt", "rt", "ptt", "ft", "soat", "cbt", "imt", "oas", "agent")
)

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
        "gitlab_token",
        "<GITLAB_TOKEN>",
        # glpat- (personal), gldt- (deploy), glrt- (runner), ... + 20 or more characters,
        # with an upper-case letter or digit so "glpat-my-token-name-for-ci" stays.
        (
            compile_rule(
                r"gl(?<![A-Za-z0-9_-]gl)(?:pat|dt|rt|ptt|ft|soat|cbt|imt|oas|agent)-"
                r"(?=[a-z_-]{0,255}[A-Z0-9])[A-Za-z0-9_-]{20,255}"
                r"(?:\.[A-Za-z0-9_-]{1,64}){0,3}(?![A-Za-z0-9_-])",
                triggers=GITLAB_PREFIXES,
            ),
        ),
        secret=True,
    ),
    Detector(
        "stripe_key",
        "<STRIPE_KEY>",
        # Secret, restricted and publishable keys (live and test), webhook signing secrets.
        (
            compile_rule(
                r"(?:[spr]k_(?:live|test)_(?<![A-Za-z0-9_].._...._)[A-Za-z0-9]{16,247}"
                r"|whsec_(?<![A-Za-z0-9_]whsec_)[A-Za-z0-9+/=]{24,255})(?![A-Za-z0-9_])",
                triggers=("k_live_", "k_test_", "whsec_"),
            ),
        ),
        secret=True,
    ),
    Detector(
        "slack_token",
        "<SLACK_TOKEN>",
        # Bot/user/app tokens: xoxb-<team digits>-..., xoxp-..., xapp-1-A...-<digits>-<hex>,
        # and rotating tokens xoxe.xoxp-1-...
        (
            compile_rule(
                r"(?:xox[abpersc]-(?<![A-Za-z0-9.]xox.-)[0-9]{6,15}-[A-Za-z0-9-]{8,255}"
                r"|xoxe\.xox[bp]-(?<![A-Za-z0-9]xoxe.xox.-)[0-9]-[A-Za-z0-9]{20,255}"
                r"|xapp-(?<![A-Za-z0-9]xapp-)[0-9]-[A-Z0-9]{6,15}-[0-9]{6,15}-[A-Za-z0-9]{16,255})"
                r"(?![A-Za-z0-9-])",
                triggers=("xox", "xapp-"),
            ),
        ),
        secret=True,
    ),
    Detector(
        "slack_webhook",
        "<SLACK_WEBHOOK>",
        # The path of an incoming webhook or workflow trigger is the secret:
        # https://hooks.slack.com/<SLACK_WEBHOOK>
        (
            compile_rule(
                r"hooks\.slack\.com/(?P<v>(?:services|workflows|triggers)/[A-Za-z0-9_/-]{10,255})",
                group="v",
                triggers=("hooks.slack.com/",),
            ),
        ),
        secret=True,
    ),
    Detector(
        "huggingface_token",
        "<HUGGINGFACE_TOKEN>",
        # hf_ + 34 letters and digits; a run of lower-case letters (hf_hub_download is
        # stopped by its "_" anyway) is an identifier.
        (
            compile_rule(
                r"hf_(?<![A-Za-z0-9_]hf_)(?=[a-z]{0,40}[A-Z0-9])[A-Za-z0-9]{30,40}(?![A-Za-z0-9_])",
                triggers=("hf_",),
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
        "basic_auth",
        "<BASIC_AUTH>",
        # Authorization: Basic dXNlcjpwYXNz -> Authorization: Basic <BASIC_AUTH>, when the
        # value decodes to "user:password".
        (
            compile_rule(
                r"(?:Basic|basic|BASIC)(?<!\w.....)[ \t]+"
                r"(?P<v>[A-Za-z0-9+/]{6,1024}={0,2})(?![A-Za-z0-9+/=])",
                check_basic_auth,
                triggers=("asic", "ASIC"),
            ),
        ),
        secret=True,
    ),
    Detector(
        "url_password",
        "<PASSWORD>",
        # postgresql://user:secret@host/db -> postgresql://user:<PASSWORD>@host/db. The
        # user may be empty (redis://:pw@host) and the password may hold "/" or "@"
        # (people do not percent-encode them), so it runs to the *last* "@" followed by
        # a host name before a space or quote: "u:p@ss/w0rd@db/x" is ambiguous, and
        # taking too much hides a host name where taking too little leaks a password.
        (
            compile_rule(
                # "/"-separated segments, never "//": the scan stops at the next URL.
                r"://[^\s/:@]{0,256}:(?P<v>[^\s\"/]{1,256}(?:/[^\s\"/]{1,256}){0,8})@"
                r"(?=(?:[\w.~%-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?:[:/?#,;)\]'\"<>\s]|\Z))",
                check_url_password,
                triggers=("://",),
            ),
        ),
        secret=True,
    ),
)
