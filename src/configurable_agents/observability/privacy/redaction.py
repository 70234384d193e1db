"""PII and secret redaction for every string that leaves the process.

The exporter thread passes params, tags, artifacts (prompts, responses, inputs,
outputs, tracebacks) and error messages through one :class:`Redactor` before they
reach MLflow. Matches are replaced by typed placeholders such as ``<EMAIL>`` so a
reader still sees *what* was there, never the value.

Why it is built this way:

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

Decisions a user may trip over are documented in docs/OBSERVABILITY.md
("Security and PII"): a bare ``1.2.3.4`` is an IPv4 address (``v1.2.3.4`` and
five-part versions are not); bare 9- or 10-digit runs are not SSNs or phone
numbers unless a context word (``SSN``) or a ``+`` says so.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from configurable_agents.config.redaction_config import DETECTOR_NAMES, RedactionConfig

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
_PEM_SCAN = 65536  # how far a PEM block's END line is searched for

# (start, end) of the part of a match to replace, or None to keep the match.
Validator = Callable[[re.Match[str]], tuple[int, int] | None]


# --------------------------------------------------------------------------- checks


def luhn_is_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# IBAN length per country (ISO 13616 registry). Unknown countries are rejected:
# mod-97 alone would accept 1 in 97 random product codes.
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_is_valid(iban: str) -> bool:
    """Country length and ISO 7064 mod-97 check of a compact (no spaces) IBAN."""
    iban = iban.upper()
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _check_iban(m: re.Match[str]) -> tuple[int, int] | None:
    # The candidate may run on into the next word ("... 7654 32 EUR"): keep exactly
    # as many characters as the country's IBAN has, then require a word break.
    raw = m.group(0)
    expected = _IBAN_LENGTHS.get(raw[:2])
    if expected is None:
        return None
    kept = 0
    end = 0
    for i, ch in enumerate(raw):
        if ch.isalnum():
            kept += 1
            if kept == expected:
                end = i + 1
                break
    if not end or (end < len(raw) and raw[end].isalnum()):
        return None
    compact = re.sub(r"[^A-Z0-9]", "", raw[:end])
    if not iban_is_valid(compact):
        return None
    return m.start(), m.start() + end


def _check_card(m: re.Match[str]) -> tuple[int, int] | None:
    raw = m.group(0)
    separators = {ch for ch in raw if not ch.isdigit()}
    if len(separators) > 1:  # "4111 1111-1111" is not how cards are written
        return None
    if separators:
        groups = re.split(r"[ -]", raw)
        if any(not 3 <= len(g) <= 6 for g in groups):  # 4-4-4-4, 4-6-5, 4-4-4-4-3
            return None
    digits = raw.replace(" ", "").replace("-", "")
    if len(digits) not in _card_lengths(digits) or not luhn_is_valid(digits):
        return None
    return m.span()


def _card_lengths(digits: str) -> tuple[int, ...]:
    """Lengths issued for this number's prefix (IIN ranges of the major networks).

    Luhn alone passes 1 in 10 random numbers; the prefix-length table rejects most
    of those, e.g. EAN-13 barcodes (13 digits: no network issues 13-digit cards any
    more, legacy 13-digit Visa numbers are not detected).
    """
    two = int(digits[:2])
    four = int(digits[:4])
    if digits[0] == "4":
        return (16, 19)  # Visa
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return (16,)  # Mastercard
    if two in (34, 37):
        return (15,)  # American Express
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return (14, 16)  # Diners Club
    if two in (35, 50, 56, 57, 58) or digits[0] == "6":
        return (16, 17, 18, 19)  # JCB, Maestro, Discover, UnionPay, RuPay
    return ()


def _check_ip(m: re.Match[str]) -> tuple[int, int] | None:
    try:
        ipaddress.IPv4Address(m.group(0))
    except ValueError:
        return None
    return m.span()


_HEX_DIGIT = re.compile(r"[0-9A-Fa-f]")


def _check_ipv6(m: re.Match[str]) -> tuple[int, int] | None:
    raw = m.group(0).rstrip(".")
    if len(_HEX_DIGIT.findall(raw)) < 4:  # "a::b" in C++ or Rust is not an address
        return None
    try:
        ipaddress.IPv6Address(raw)
    except ValueError:
        return None
    return m.start(), m.start() + len(raw)


def _check_ssn_digits(digits: str) -> bool:
    # Never issued: area 000, 666 and 900-999; group 00; serial 0000.
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _check_ssn(m: re.Match[str]) -> tuple[int, int] | None:
    digits = m.group(0).replace("-", "").replace(" ", "")
    return m.span() if _check_ssn_digits(digits) else None


def _check_ssn_context(m: re.Match[str]) -> tuple[int, int] | None:
    return m.span("v") if _check_ssn_digits(m.group("v")) else None


_NOT_BEFORE_PHONE = frozenset("+.-_") | frozenset("0123456789")


def _check_phone(low: int, high: int, country_code: str = "") -> Validator:
    """Digit count in [low, high], a word boundary before, and balanced parentheses.

    The boundary is checked here rather than by a leading look-behind because a
    pattern that starts with a look-behind cannot use the engine's fast scan.
    ``country_code`` may stand before the number, as in 1-800-555-0199.
    """

    def check(m: re.Match[str]) -> tuple[int, int] | None:
        raw = m.group(0)
        start = m.start()
        text = m.string
        if start and (text[start - 1] in _NOT_BEFORE_PHONE or text[start - 1].isalpha()):
            code_start = start - 1 - len(country_code)
            if not (
                country_code
                and text[start - 1] in " .-"
                and text.startswith(country_code, code_start)
                and (code_start == 0 or not _is_phone_glue(text[code_start - 1]))
            ):
                return None
        end = m.end()
        # In "(+44 20 7946 0958)" or "(020 7946 0958)" the outer parenthesis is not ours.
        if raw.endswith(")") and raw.count(")") > raw.count("("):
            raw = raw[:-1]
            end -= 1
        if raw.startswith("(") and raw.count("(") > raw.count(")"):
            raw = raw[1:]
            start += 1
        if raw.count("(") != raw.count(")"):
            return None
        n = sum(ch.isdigit() for ch in raw)
        return (start, end) if low <= n <= high else None

    return check


def _is_phone_glue(ch: str) -> bool:
    return ch in _NOT_BEFORE_PHONE or ch.isalpha()


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".bmp", ".ico")


def _check_email(m: re.Match[str]) -> tuple[int, int] | None:
    # "icon@2x.png" is an asset name, not an address: no TLD is an image format.
    if m.group(0).lower().endswith(_IMAGE_SUFFIXES):
        return None
    return m.span()


_PEM_BEGIN = r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
_PEM_END = re.compile(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
# A block without its END line (a truncated artifact) loses the body lines that
# follow: base64, or the Proc-Type / DEK-Info headers of legacy encrypted keys;
# newlines may be JSON-escaped.
_PEM_BODY = re.compile(
    r"(?:(?:\r?\n|\\r?\\n)(?:[A-Za-z0-9+/=]{1,128}|(?:Proc-Type|DEK-Info): [A-Za-z0-9,-]{1,128}))"
    r"{0,2000}"
)


def _pem_validator() -> Validator:
    """From a BEGIN line to its END line (at most 64 KiB on), else over the body.

    The next END line is searched for once and reused by every BEGIN before it, so
    a string of many BEGIN lines without END costs linear, not quadratic, time.
    """
    next_end: re.Match[str] | None = None
    exhausted = False

    def check(m: re.Match[str]) -> tuple[int, int] | None:
        nonlocal next_end, exhausted
        if not exhausted and (next_end is None or next_end.start() < m.end()):
            next_end = _PEM_END.search(m.string, m.end())
            exhausted = next_end is None
        if next_end is not None and next_end.start() - m.end() <= _PEM_SCAN:
            return m.start(), next_end.end()
        body = _PEM_BODY.match(m.string, m.end())
        return m.start(), body.end() if body else m.end()

    return check


# ------------------------------------------------------------------------ detectors
#
# Speed note: CPython's regex engine scans fast only for a pattern that starts with
# a literal (or, less so, a character class). So word-boundary look-behinds are put
# *after* the first token, e.g. ``sk-(?<![A-Za-z0-9]sk-)`` rather than
# ``(?<![A-Za-z0-9])sk-``; both mean "sk- not preceded by a letter or digit".


@dataclass(frozen=True)
class _Rule:
    """One compiled pattern; ``group`` (if set) is the only part replaced.

    The rule runs only on strings that contain one of ``triggers`` (if any) and at
    least ``min_digits`` digits: two checks done in C that skip most strings.
    """

    pattern: re.Pattern[str]
    validate: Validator | None = None
    group: str | None = None
    triggers: tuple[str, ...] = ()
    min_digits: int = 0
    # A validator with state for one string (made fresh for each call).
    validate_factory: Callable[[], Validator] | None = None


@dataclass(frozen=True)
class _Detector:
    name: str
    placeholder: str
    rules: tuple[_Rule, ...]
    secret: bool = False  # secrets run before user patterns, PII after them


def _rule(
    pattern: str,
    validate: Validator | None = None,
    *,
    group: str | None = None,
    triggers: tuple[str, ...] = (),
    min_digits: int = 0,
    validate_factory: Callable[[], Validator] | None = None,
) -> _Rule:
    return _Rule(re.compile(pattern), validate, group, triggers, min_digits, validate_factory)


_PHONE_END = r"(?![\w]|[.:/-][0-9])"

_BUILTINS: tuple[_Detector, ...] = (
    _Detector(
        "private_key",
        "<PRIVATE_KEY>",
        (
            _rule(
                _PEM_BEGIN,
                validate_factory=_pem_validator,
                triggers=("PRIVATE KEY",),
            ),
        ),
        secret=True,
    ),
    _Detector(
        "jwt",
        "<JWT>",
        (
            _rule(
                r"eyJ(?<![\w-]eyJ)[A-Za-z0-9_-]{5,}\.ey[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
                triggers=("eyJ",),
            ),
        ),
        secret=True,
    ),
    _Detector(
        "anthropic_key",
        "<ANTHROPIC_KEY>",
        (_rule(r"sk-ant-(?<![A-Za-z0-9]sk-ant-)[A-Za-z0-9_-]{20,}", triggers=("sk-ant-",)),),
        secret=True,
    ),
    _Detector(
        "openai_key",
        "<OPENAI_KEY>",
        # Keys are random: one with no digit in its first 200 characters is a word
        # such as "sk-learn-compatible-estimators".
        (
            _rule(
                r"sk-(?<![A-Za-z0-9]sk-)(?!ant-)(?=[A-Za-z_-]{0,200}[0-9])[A-Za-z0-9_-]{20,}",
                triggers=("sk-",),
            ),
        ),
        secret=True,
    ),
    _Detector(
        "google_api_key",
        "<GOOGLE_API_KEY>",
        (
            _rule(
                r"AIza(?<![A-Za-z0-9_-]AIza)[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])",
                triggers=("AIza",),
            ),
        ),
        secret=True,
    ),
    _Detector(
        "aws_access_key",
        "<AWS_ACCESS_KEY>",
        (
            _rule(
                r"(?:AKIA|ASIA|ABIA|ACCA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])",
                triggers=("AKIA", "ASIA", "ABIA", "ACCA"),
            ),
        ),
        secret=True,
    ),
    _Detector(
        "aws_secret_key",
        "<AWS_SECRET_KEY>",
        # The 40-character secret has no prefix: found only after its usual name.
        (
            _rule(
                r"(?i:aws_?secret_?(?:access_?)?key)[\"']?\s{0,5}[:=]\s{0,5}[\"']?"
                r"(?P<v>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
                group="v",
                triggers=("ecret", "ECRET"),
            ),
        ),
        secret=True,
    ),
    _Detector(
        "github_token",
        "<GITHUB_TOKEN>",
        (
            _rule(
                r"(?:gh[pousr]_(?<![A-Za-z0-9_]gh._)[A-Za-z0-9]{36,255}"
                r"|github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])",
                triggers=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
            ),
        ),
        secret=True,
    ),
    _Detector(
        "bearer_token",
        "<BEARER_TOKEN>",
        # Only the token is replaced ("Authorization: Bearer <BEARER_TOKEN>"); it must
        # hold a digit, so prose ("the bearer instrument") is left alone.
        (
            _rule(
                r"(?:Bearer|bearer|BEARER)(?<!\w......)[ \t]+"
                r"(?P<v>(?=[A-Za-z._~+/=-]{0,500}[0-9])[A-Za-z0-9._~+/=-]{8,})",
                group="v",
                triggers=("earer", "EARER"),
            ),
        ),
        secret=True,
    ),
    _Detector(
        "url_password",
        "<PASSWORD>",
        # postgresql://user:secret@host/db -> postgresql://user:<PASSWORD>@host/db
        (_rule(r"://[^\s/:@]{1,256}:(?P<v>[^\s/@]{1,256})@", group="v", triggers=("://",)),),
        secret=True,
    ),
    _Detector(
        "email",
        "<EMAIL>",
        (
            _rule(
                r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@"
                r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![A-Za-z0-9-])",
                _check_email,
                triggers=("@",),
            ),
        ),
    ),
    _Detector(
        "iban",
        "<IBAN>",
        (
            _rule(
                r"[A-Z](?<![A-Za-z0-9].)[A-Z][0-9]{2}(?:[ -]?[A-Z0-9]){11,40}",
                _check_iban,
                min_digits=6,
            ),
        ),
    ),
    _Detector(
        "credit_card",
        "<CREDIT_CARD>",
        # First digit 2-6: Mastercard 2-series, Amex/Diners/JCB, Visa, Mastercard,
        # Discover/UnionPay. This rules out ISBN-13s (978...) and ms timestamps (17...).
        (
            _rule(
                r"[2-6](?<![\w+.-].)(?:[ -]?[0-9]){12,18}(?![\w]|[.-][0-9])",
                _check_card,
                min_digits=13,
            ),
        ),
    ),
    _Detector(
        "ssn",
        "<SSN>",
        (
            _rule(
                r"[0-8](?<![\w-].)[0-9]{2}(?P<s>[- ])[0-9]{2}(?P=s)[0-9]{4}(?![\w]|-[0-9])",
                _check_ssn,
                min_digits=9,
            ),
            # Nine bare digits are an SSN only after a context word.
            _rule(
                r"(?:\b(?:SSN|ssn|Ssn|SS#|ss#)|[Ss]ocial [Ss]ecurity(?: [Nn]umber| [Nn]o\.?)?"
                r"|SOCIAL SECURITY(?: NUMBER| NO\.?)?)[^0-9\n]{0,12}(?P<v>[0-9]{9})(?![0-9])",
                _check_ssn_context,
                triggers=("SSN", "ssn", "Ssn", "SS#", "ss#", "ecurity", "ECURITY"),
                min_digits=9,
            ),
        ),
    ),
    _Detector(
        "ip_address",
        "<IP_ADDRESS>",
        (
            _rule(
                r"(?:::(?<![\w:.]::)"
                r"|[0-9A-Fa-f](?<![\w:.].)"
                # Either "::" soon, or the full form's colons (6+: "12:30:45" is a time).
                r"(?=[0-9A-Fa-f]{0,3}:(?:[0-9A-Fa-f]{0,4}:){5}|[0-9A-Fa-f:.]{0,39}::))"
                r"[0-9A-Fa-f:.]{1,43}(?![\w:])",
                _check_ipv6,
                triggers=("::", ":"),
            ),
            _rule(
                r"[0-9](?<![\w.].)[0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?![\w]|\.[0-9])",
                _check_ip,
                triggers=(".",),
                min_digits=4,
            ),
        ),
    ),
    _Detector(
        "phone",
        "<PHONE>",
        (
            # International: +CC then 6-14 more digits, spaces/dots/dashes/parentheses.
            _rule(
                r"\+(?<![\w+]\+)[1-9](?:[ .-]?\(?[0-9]\)?){6,14}(?![0-9])",
                _check_phone(7, 15),
                triggers=("+",),
                min_digits=7,
            ),
            # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199
            # (the "1-" stays: a leading optional group would slow the scan down 3x).
            _rule(
                r"(?:\([0-9]{3}\) ?[0-9]{3}[ .-]|[0-9]{3}(?P<s>[ .-])[0-9]{3}(?P=s))[0-9]{4}"
                + _PHONE_END,
                _check_phone(10, 10, country_code="1"),
                min_digits=10,
            ),
            # National with trunk 0: 020 7946 0958, 07700 900123, 06 12 34 56 78.
            _rule(
                r"\(?0[1-9][0-9]{0,3}\)?(?P<t>[ .-])[0-9]{2,8}(?:(?P=t)[0-9]{2,8}){0,3}"
                + _PHONE_END,
                _check_phone(9, 12),
                triggers=("0",),
                min_digits=9,
            ),
        ),
    ),
)

assert tuple(d.name for d in _BUILTINS) == DETECTOR_NAMES, "update config/redaction_config.py"


def _count_digits(text: str) -> int:
    # Ten C-level scans: about 1 ms per MB, far cheaper than one regex pass.
    return sum(map(text.count, "0123456789"))


def _gate_pattern(detectors: Iterable[_Detector]) -> re.Pattern[str]:
    """One regex that finds anything *any* active rule could start from.

    Most strings sent to MLflow (param values, tags, node names) hold none of it,
    so one C-level search lets them skip every detector.
    """
    literals: set[str] = set()
    for det in detectors:
        for rule in det.rules:
            if not rule.triggers and not rule.min_digits:
                return re.compile(r"[\s\S]")  # a user pattern: cannot be gated
            literals.update(rule.triggers)
            if rule.min_digits:
                literals.add("0123456789")
    parts = sorted(re.escape(t) for t in literals if t != "0123456789")
    if "0123456789" in literals:
        parts.insert(0, "[0-9]")
    return re.compile("|".join(parts) or r"(?!)")




# --------------------------------------------------------------------------- config


def _import_callable(path: str) -> Callable[[str], str]:
    module_name, _, attr = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"redaction custom {path!r} cannot be imported: {exc}") from None
    if not callable(target):
        raise ValueError(f"redaction custom {path!r} is not callable")
    return target


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
            custom = _import_callable(config.custom)
        self._custom = custom
        self._detectors = self._build(config)
        self._gate = _gate_pattern(self._detectors)
        self._triggers = tuple({t for d in self._detectors for r in d.rules for t in r.triggers})
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._warned = False

    @staticmethod
    def _build(config: RedactionConfig) -> tuple[_Detector, ...]:
        extras = [
            _Detector(
                name.lower(),
                f"<{name.upper()}>",
                (_rule(pattern),),
            )
            for name, pattern in config.extra_patterns.items()
        ]
        # A user pattern named like a built-in replaces it.
        skip = set(config.disabled_detectors) | {d.name for d in extras}
        active = [d for d in _BUILTINS if d.name not in skip]
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
        if len(text) >= _MIN_LENGTH and self._gate.search(text) is not None:
            digits = -1  # counted on first need
            present = {t for t in self._triggers if t in text}
            for det in self._detectors:
                for rule in det.rules:
                    if rule.triggers and present.isdisjoint(rule.triggers):
                        continue
                    if rule.min_digits:
                        if digits < 0:
                            digits = _count_digits(text)
                        if digits < rule.min_digits:
                            continue
                    if rule.pattern.search(text) is None:
                        continue
                    before = len(text)
                    text = self._sub(rule, det, text, counts)
                    if digits >= 0 and len(text) != before:
                        digits = -1  # placeholders removed some digits: count again
        if self._custom is not None and text:
            result = self._custom(text)
            if not isinstance(result, str):
                raise TypeError(f"custom redactor returned {type(result).__name__}, not str")
            if result != text:
                counts["custom"] = counts.get("custom", 0) + 1
            text = result
        return text

    def _sub(self, rule: _Rule, det: _Detector, text: str, counts: dict[str, int]) -> str:
        """Replace the rule's validated matches; a span may reach past its match."""
        validate = rule.validate_factory() if rule.validate_factory else rule.validate
        allow = self._allow
        pieces: list[str] = []
        pos = 0
        for m in rule.pattern.finditer(text):
            if m.start() < pos:  # inside a region already replaced
                continue
            if validate is not None:
                span = validate(m)
                if span is None:
                    continue
                start, end = span
            elif rule.group is not None:
                start, end = m.span(rule.group)
            else:
                start, end = m.span()
            if start < pos or (allow and text[start:end] in allow):
                continue
            pieces.append(text[pos:start])
            pieces.append(det.placeholder)
            pos = end
        if not pieces:
            return text
        pieces.append(text[pos:])
        counts[det.name] = counts.get(det.name, 0) + len(pieces) // 2
        return "".join(pieces)

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
