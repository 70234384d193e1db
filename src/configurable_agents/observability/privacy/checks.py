"""Validators: a regex finds a candidate, these decide whether it really is one.

Numbers are everywhere in LLM traffic (order ids, timestamps, versions, prices), so a
shape alone is not enough: cards carry a Luhn digit and an issuer prefix, IBANs a
country length and mod-97, SSNs avoid ranges the SSA never issues, IP addresses must
parse. Each validator takes a match and returns the ``(start, end)`` to replace, or
None to keep the text as it is.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable

PEM_SCAN = 65536  # how far a PEM block's END line is searched for

# (start, end) of the part of a match to replace, or None to keep the match.
Validator = Callable[[re.Match[str]], tuple[int, int] | None]


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
IBAN_LENGTHS: dict[str, int] = {
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
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def check_iban(m: re.Match[str]) -> tuple[int, int] | None:
    """An upper-case IBAN anywhere, or (group ``v``) one of any case after "IBAN".

    Lower case needs the keyword: a hex id such as a LangChain run or span id
    (``be57eb975729fae9``) passes a Belgian length and mod-97 check by chance 1 in 97.
    """
    start = m.start("v") if "v" in m.re.groupindex else m.start()
    raw = m.string[start : m.end()].upper()
    # The candidate may run on into the next word ("... 7654 32 EUR"): keep exactly
    # as many characters as the country's IBAN has, then require a word break.
    expected = IBAN_LENGTHS.get(raw[:2])
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
    return start, start + end


def check_card(m: re.Match[str]) -> tuple[int, int] | None:
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


def check_ip(m: re.Match[str]) -> tuple[int, int] | None:
    try:
        ipaddress.IPv4Address(m.group(0))
    except ValueError:
        return None
    return m.span()


_HEX_DIGIT = re.compile(r"[0-9A-Fa-f]")


def check_ipv6(m: re.Match[str]) -> tuple[int, int] | None:
    raw = m.group(0).rstrip(".")
    if len(_HEX_DIGIT.findall(raw)) < 4:  # "a::b" in C++ or Rust is not an address
        return None
    try:
        ipaddress.IPv6Address(raw)
    except ValueError:
        return None
    return m.start(), m.start() + len(raw)


def check_ssn_digits(digits: str) -> bool:
    # Never issued: area 000, 666 and 900-999; group 00; serial 0000.
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def check_ssn(m: re.Match[str]) -> tuple[int, int] | None:
    digits = m.group(0).replace("-", "").replace(" ", "")
    return m.span() if check_ssn_digits(digits) else None


def check_ssn_context(m: re.Match[str]) -> tuple[int, int] | None:
    return m.span("v") if check_ssn_digits(m.group("v")) else None


_NOT_BEFORE_PHONE = frozenset("+.-_") | frozenset("0123456789")


def check_phone(low: int, high: int, country_code: str = "") -> Validator:
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


def check_email(m: re.Match[str]) -> tuple[int, int] | None:
    # "icon@2x.png" is an asset name, not an address: no TLD is an image format.
    if m.group(0).lower().endswith(_IMAGE_SUFFIXES):
        return None
    # "git@github.com:org/repo.git" and "ssh://git@host/..." are git remotes: "git" is
    # the SSH user every forge uses, not a person.
    if m.group(0).startswith("git@") and m.string[m.end() : m.end() + 1] in (":", "/"):
        return None
    return m.span()


PEM_BEGIN = r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
_PEM_END = re.compile(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
# A block without its END line (a truncated artifact) loses the body lines that
# follow: base64, or the Proc-Type / DEK-Info headers of legacy encrypted keys;
# newlines may be JSON-escaped.
_PEM_BODY = re.compile(
    r"(?:(?:\r?\n|\\r?\\n)(?:[A-Za-z0-9+/=]{1,128}|(?:Proc-Type|DEK-Info): [A-Za-z0-9,-]{1,128}))"
    r"{0,2000}"
)


def pem_validator() -> Validator:
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
        if next_end is not None and next_end.start() - m.end() <= PEM_SCAN:
            return m.start(), next_end.end()
        body = _PEM_BODY.match(m.string, m.end())
        return m.start(), body.end() if body else m.end()

    return check


_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")


def check_url_password(m: re.Match[str]) -> tuple[int, int] | None:
    """The password of ``scheme://user:password@host``, unless an earlier detector took it.

    ``host:8080/path@x`` is a port and a path, not a password.
    """
    value = m.group("v")
    if _PLACEHOLDER.fullmatch(value) or _PORT_AND_PATH.match(value):
        return None
    return m.span("v")


_PORT_AND_PATH = re.compile(r"[0-9]{1,5}/")


def check_basic_auth(m: re.Match[str]) -> tuple[int, int] | None:
    """``Basic <base64>`` whose value decodes to printable ``user:password``.

    The decode keeps prose such as "Basic training" (valid base64 letters) alone.
    """
    value = m.group("v")
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if ":" not in decoded or not decoded.isprintable():
        return None
    return m.span("v")
