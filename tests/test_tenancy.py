"""Tenant ids from invocation metadata are untrusted: only safe names become experiment
names, and a rejected value never appears in an error (and so never in a log line)."""

from __future__ import annotations

import string
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from configurable_agents.observability.privacy.tenancy import (
    TenantError,
    fingerprint,
    resolve_experiment_name,
)

TEMPLATE = "{tenant_id}_workflows"
PATH_CHARACTERS = set("/\\:*?\"'<>|%$`{}[]~")


def _rejection(value: object) -> TenantError:
    with pytest.raises(TenantError) as info:
        resolve_experiment_name(TEMPLATE, {"tenant_id": value})
    return info.value


# The message of a rejected value with the fingerprint taken out: it must be the same
# for every rejected value, i.e. it carries nothing of the value but its hash.
_REFERENCE = _rejection("!")
_CONSTANT_MESSAGE = str(_REFERENCE).replace(_REFERENCE.fingerprint, "#")


@pytest.mark.parametrize(
    "value",
    ["acme\n", "acme\r\n", "acme\x00", "\nacme", "ac\tme", "acme\x1b[31m", "acme\u2028", "acme "],
)
def test_control_and_whitespace_characters_are_refused(value: str) -> None:
    error = _rejection(value)
    assert "acme" not in str(error)
    assert error.fingerprint == fingerprint(value)
    assert error.field == "tenant_id"


def test_safe_tenant_ids_are_used_as_they_are() -> None:
    for value in ("acme", "Acme-2", "a.b_c", "7", "x" * 64):
        assert resolve_experiment_name(TEMPLATE, {"tenant_id": value}) == f"{value}_workflows"
    assert resolve_experiment_name(TEMPLATE, {"tenant_id": 42}) == "42_workflows"
    assert resolve_experiment_name("fixed", {}) == "fixed"


def test_missing_tenant_names_the_field_not_a_value() -> None:
    for metadata in ({}, {"tenant_id": None}, {"tenant_id": ""}):
        with pytest.raises(TenantError, match="metadata has no 'tenant_id'") as info:
            resolve_experiment_name(TEMPLATE, metadata)
        assert info.value.fingerprint == ""


@given(st.text(max_size=80))
@example("acme\n")
@example("../acme")
@example("acme' or '1'='1")
@example("x" * 65)
@example("\ud800")
@example("-acme")
@example(".")
def test_accepted_ids_are_plain_names_and_rejected_ones_never_echoed(value: str) -> None:
    if value == "":
        return  # missing: covered above
    try:
        name = resolve_experiment_name(TEMPLATE, {"tenant_id": value})
    except TenantError as error:
        message = str(error)
        assert error.fingerprint == fingerprint(value)
        assert message.replace(error.fingerprint, "#") == _CONSTANT_MESSAGE
        # Only where the value is itself a piece of the fixed wording (", " or ".").
        assert value not in message or value in _CONSTANT_MESSAGE
        return
    assert name == f"{value}_workflows"
    assert 1 <= len(value) <= 64
    assert value.isascii() and value.isprintable()
    assert not any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in value)
    assert not PATH_CHARACTERS & set(value)
    assert value[0] in string.ascii_letters + string.digits  # not ".", "..", "-x"
