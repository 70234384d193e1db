"""Detectors of personal data: e-mail, IBAN, card, SSN, IP address, phone number.

Every numeric detector validates its candidates (see :mod:`.checks`); phone numbers
run last because theirs are the loosest shapes.
"""

from __future__ import annotations

from configurable_agents.observability.privacy.checks import (
    check_card,
    check_email,
    check_iban,
    check_ip,
    check_ipv6,
    check_phone,
    check_ssn,
    check_ssn_context,
)
from configurable_agents.observability.privacy.rules import Detector, compile_rule

PHONE_END = r"(?![\w]|[.:/-][0-9])"

PII_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "email",
        "<EMAIL>",
        (
            compile_rule(
                # Internationalised addresses too: josé@exämple.de, and punycode
                # (xn--) labels and top-level domains.
                r"(?<![\w.%+-])[\w.%+-]{1,64}@"
                r"[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}\.(?:[^\W\d_]{2,24}|xn--[A-Za-z0-9-]{2,59})"
                r"(?![\w-])",
                check_email,
                triggers=("@",),
            ),
        ),
    ),
    Detector(
        "iban",
        "<IBAN>",
        (
            compile_rule(
                r"[A-Z](?<![A-Za-z0-9].)[A-Z][0-9]{2}(?:[ -]?[A-Z0-9]){11,40}",
                check_iban,
                min_digits=6,
            ),
            # Any case after the word IBAN ("iban: de89 3704 ..."); lower case alone is
            # too close to hex ids (see checks.check_iban).
            compile_rule(
                r"(?:IBAN|iban|Iban)(?<![A-Za-z]....)[^A-Za-z0-9\n]{0,12}"
                r"(?P<v>[A-Za-z]{2}[0-9]{2}(?:[ -]?[A-Za-z0-9]){11,40})",
                check_iban,
                triggers=("IBAN", "iban", "Iban"),
                min_digits=6,
            ),
        ),
    ),
    Detector(
        "credit_card",
        "<CREDIT_CARD>",
        # First digit 2-6: Mastercard 2-series, Amex/Diners/JCB, Visa, Mastercard,
        # Discover/UnionPay. This rules out ISBN-13s (978...) and ms timestamps (17...).
        (
            compile_rule(
                r"[2-6](?<![\w+.-].)(?:[ -]?[0-9]){12,18}(?![\w]|[.-][0-9])",
                check_card,
                min_digits=13,
            ),
        ),
    ),
    Detector(
        "ssn",
        "<SSN>",
        (
            compile_rule(
                r"[0-8](?<![\w-].)[0-9]{2}(?P<s>[- ])[0-9]{2}(?P=s)[0-9]{4}(?![\w]|-[0-9])",
                check_ssn,
                min_digits=9,
            ),
            # Nine bare digits are an SSN only after a context word.
            compile_rule(
                r"(?:\b(?:SSN|ssn|Ssn|SS#|ss#)|[Ss]ocial [Ss]ecurity(?: [Nn]umber| [Nn]o\.?)?"
                r"|SOCIAL SECURITY(?: NUMBER| NO\.?)?)[^0-9\n]{0,12}(?P<v>[0-9]{9})(?![0-9])",
                check_ssn_context,
                triggers=("SSN", "ssn", "Ssn", "SS#", "ss#", "ecurity", "ECURITY"),
                min_digits=9,
            ),
        ),
    ),
    Detector(
        "ip_address",
        "<IP_ADDRESS>",
        (
            compile_rule(
                r"(?:::(?<![\w:.]::)"
                r"|[0-9A-Fa-f](?<![\w:.].)"
                # Either "::" soon, or the full form's colons (6+: "12:30:45" is a time).
                r"(?=[0-9A-Fa-f]{0,3}:(?:[0-9A-Fa-f]{0,4}:){5}|[0-9A-Fa-f:.]{0,39}::))"
                r"[0-9A-Fa-f:.]{1,43}(?![\w:])",
                check_ipv6,
                triggers=("::", ":"),
            ),
            compile_rule(
                r"[0-9](?<![\w.].)[0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?![\w]|\.[0-9])",
                check_ip,
                triggers=(".",),
                min_digits=4,
            ),
        ),
    ),
    Detector(
        "phone",
        "<PHONE>",
        (
            # International: +CC then 6-14 more digits, spaces/dots/dashes/parentheses.
            compile_rule(
                r"\+(?<![\w+]\+)[1-9](?:[ .-]?\(?[0-9]\)?){6,14}(?![0-9])",
                check_phone(7, 15),
                triggers=("+",),
                min_digits=7,
            ),
            # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199
            # (the "1-" stays: a leading optional group would slow the scan down 3x).
            compile_rule(
                r"(?:\([0-9]{3}\) ?[0-9]{3}[ .-]|[0-9]{3}(?P<s>[ .-])[0-9]{3}(?P=s))[0-9]{4}"
                + PHONE_END,
                check_phone(10, 10, country_code="1"),
                min_digits=10,
            ),
            # National with trunk 0: 020 7946 0958, 07700 900123, 06 12 34 56 78.
            compile_rule(
                r"\(?0[1-9][0-9]{0,3}\)?(?P<t>[ .-])[0-9]{2,8}(?:(?P=t)[0-9]{2,8}){0,3}"
                + PHONE_END,
                check_phone(9, 12),
                triggers=("0",),
                min_digits=9,
            ),
        ),
    ),
)
