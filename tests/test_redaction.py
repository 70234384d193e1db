"""PII / secret redaction: a labelled corpus (recall and precision), ordering, config,
odd input and linear-time behaviour on large adversarial strings."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from configurable_agents.observability.privacy.invisible import INVISIBLE
from configurable_agents.observability.privacy.redaction import (
    DETECTOR_NAMES,
    REDACTION_FAILED,
    RedactionConfig,
    Redactor,
    iban_is_valid,
    luhn_is_valid,
)

CORPUS = yaml.safe_load((Path(__file__).parent / "data" / "redaction_corpus.yaml").read_text())
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)>")

# Every positive is also checked in these surroundings; every negative in these.
POSITIVE_CONTEXTS = ("{}", "{}.", "key={}", '"{}"', "({})", "start\n{}\nend", "a {} b {} c")
NEGATIVE_CONTEXTS = ("{}", "Note: {} (see above).", '{"value": "{}"}', "{}\n{}")

DETECTOR_PLACEHOLDER = {
    "private_key": "PRIVATE_KEY",
    "jwt": "JWT",
    "anthropic_key": "ANTHROPIC_KEY",
    "openai_key": "OPENAI_KEY",
    "google_api_key": "GOOGLE_API_KEY",
    "aws_access_key": "AWS_ACCESS_KEY",
    "aws_secret_key": "AWS_SECRET_KEY",
    "github_token": "GITHUB_TOKEN",
    "gitlab_token": "GITLAB_TOKEN",
    "stripe_key": "STRIPE_KEY",
    "slack_token": "SLACK_TOKEN",
    "slack_webhook": "SLACK_WEBHOOK",
    "huggingface_token": "HUGGINGFACE_TOKEN",
    "bearer_token": "BEARER_TOKEN",
    "basic_auth": "BASIC_AUTH",
    "url_password": "PASSWORD",
    "email": "EMAIL",
    "iban": "IBAN",
    "credit_card": "CREDIT_CARD",
    "ssn": "SSN",
    "ip_address": "IP_ADDRESS",
    "phone": "PHONE",
}


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


def _positive_cases() -> list[tuple[str, str, str, str]]:
    """(type, text, secret, label) for every positive in its own and generic contexts."""
    cases = []
    for entry in CORPUS["positives"]:
        kind, value, template = entry[:3]
        secret = entry[3] if len(entry) > 3 else value
        for tpl in (template, *POSITIVE_CONTEXTS):
            cases.append((kind, tpl.replace("{}", value), secret, f"{kind}:{value[:30]!r}"))
    return cases


def _negative_cases() -> list[tuple[str, str]]:
    return [
        (kind, ctx.replace("{}", text))
        for kind, text in CORPUS["negatives"]
        for ctx in NEGATIVE_CONTEXTS
    ]


# ------------------------------------------------------------------------------ corpus


def test_corpus_covers_every_detector_and_is_large() -> None:
    kinds = {entry[0] for entry in CORPUS["positives"]}
    assert kinds == set(DETECTOR_PLACEHOLDER.values())
    assert set(DETECTOR_PLACEHOLDER) == set(DETECTOR_NAMES)
    per_kind = Counter(entry[0] for entry in CORPUS["positives"])
    assert min(per_kind.values()) >= 2, per_kind
    assert len(CORPUS["positives"]) + len(CORPUS["negatives"]) >= 300


def test_corpus_values_are_really_valid_or_invalid() -> None:
    """The labels themselves are checked, so a typo cannot make a test pass."""
    for kind, value, _template, *secret in CORPUS["positives"]:
        compact = INVISIBLE.sub("", secret[0] if secret else value)
        compact = compact.replace(" ", "").replace("-", "")
        if kind == "CREDIT_CARD":
            assert luhn_is_valid(compact), value
        if kind == "IBAN":
            assert iban_is_valid(compact), value
    assert not luhn_is_valid("4111111111111112")
    assert not iban_is_valid("GB83WEST12345698765432")


def test_corpus_recall_and_precision(redactor: Redactor) -> None:
    tp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    misses: list[str] = []
    false_alarms: list[str] = []
    positives = _positive_cases()
    for kind, text, secret, label in positives:
        out = redactor.redact(text)
        found = Counter(PLACEHOLDER.findall(out)) - Counter(PLACEHOLDER.findall(text))
        expected = text.count(secret)
        if secret not in out and found[kind] >= expected:
            tp[kind] += 1
        else:
            fn[kind] += 1
            misses.append(f"{label} in {text!r} -> {out!r}")
        for other, n in (found - Counter({kind: expected})).items():
            fp[other] += n
            false_alarms.append(f"{label}: extra <{other}> in {out!r}")
    negatives = _negative_cases()
    for kind, text in negatives:
        out = redactor.redact(text)
        if out != text:
            for found_kind in PLACEHOLDER.findall(out):
                fp[found_kind] += 1
            false_alarms.append(f"negative {kind}: {text!r} -> {out!r}")

    total_tp, total_fn, total_fp = sum(tp.values()), sum(fn.values()), sum(fp.values())
    recall = total_tp / (total_tp + total_fn)
    precision = total_tp / (total_tp + total_fp) if total_tp + total_fp else 1.0
    print(
        f"\nredaction corpus: {len(CORPUS['positives'])} positive + {len(CORPUS['negatives'])} "
        f"negative entries -> {len(positives)} positive and {len(negatives)} negative cases"
    )
    print(f"{'type':18s} {'TP':>5s} {'FN':>4s} {'FP':>4s} {'recall':>7s} {'precision':>9s}")
    for kind in sorted(set(DETECTOR_PLACEHOLDER.values())):
        t, n, f = tp[kind], fn[kind], fp[kind]
        r = t / (t + n) if t + n else 1.0
        p = t / (t + f) if t + f else 1.0
        print(f"{kind:18s} {t:5d} {n:4d} {f:4d} {r:7.3f} {p:9.3f}")
    print(f"{'ALL':18s} {total_tp:5d} {total_fn:4d} {total_fp:4d} {recall:7.3f} {precision:9.3f}")
    assert not misses, "\n".join(misses[:20])
    assert not false_alarms, "\n".join(false_alarms[:20])
    assert recall == 1.0 and precision == 1.0


# ---------------------------------------------------------------------------- ordering


def test_anthropic_key_is_not_reported_as_openai(redactor: Redactor) -> None:
    key = "sk-ant-api03-" + "Ab3" * 30
    assert redactor.redact(f"k={key}") == "k=<ANTHROPIC_KEY>"


def test_bearer_jwt_keeps_the_specific_type(redactor: Redactor) -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFU"
    assert redactor.redact(f"Authorization: Bearer {jwt}") == "Authorization: Bearer <JWT>"
    key = "sk-proj-" + "x1Y2" * 10
    assert redactor.redact(f"Authorization: Bearer {key}") == "Authorization: Bearer <OPENAI_KEY>"


def test_digits_inside_secrets_never_become_phone_numbers(redactor: Redactor) -> None:
    key = "AIzaSy" + "0123456789" * 3 + "abc"
    assert len(key) == 39
    assert redactor.redact(f"key {key} end") == "key <GOOGLE_API_KEY> end"
    pem = (
        "-----BEGIN PRIVATE KEY-----\n+44 20 7946 0958\n4111111111111111\n-----END PRIVATE KEY-----"
    )
    assert redactor.redact(pem) == "<PRIVATE_KEY>"


def test_iban_digits_are_not_a_card(redactor: Redactor) -> None:
    out = redactor.redact("DE89 3704 0044 0532 0130 00")
    assert out == "<IBAN>"


def test_placeholders_are_stable_under_a_second_pass(redactor: Redactor) -> None:
    text = " ".join(entry[2].replace("{}", entry[1]) for entry in CORPUS["positives"])
    once = redactor.redact(text)
    assert redactor.redact(once) == once


@pytest.mark.parametrize(
    "text",
    ["000-12-3456", "666-12-3456", "900-12-3456", "999-99-9999", "123-00-4567", "123-45-0000"],
)
def test_ssn_invalid_ranges_are_kept(redactor: Redactor, text: str) -> None:
    assert redactor.redact(f"SSN {text}") == f"SSN {text}"


def test_iban_candidate_running_into_the_next_word_is_trimmed(redactor: Redactor) -> None:
    assert redactor.redact("GB82 WEST 1234 5698 7654 32 EUR 12") == "<IBAN> EUR 12"


def test_four_part_dotted_quad_is_an_ip_but_versions_are_not(redactor: Redactor) -> None:
    assert redactor.redact("1.2.3.4") == "<IP_ADDRESS>"
    for text in ("v1.2.3.4", "1.2.3.4.5", "10.0.19045.3693", "v2.15.0", "256.1.1.1"):
        assert redactor.redact(text) == text


def test_url_password_keeps_user_and_host(redactor: Redactor) -> None:
    out = redactor.redact("could not connect to postgresql://app:s3cr3t@db:5432/x")
    assert out == "could not connect to postgresql://app:<PASSWORD>@db:5432/x"


def test_url_password_with_slash_or_at_takes_up_to_the_last_host(redactor: Redactor) -> None:
    # "u:p@ss/w0rd@db" could be password "p" at host "ss"; taking the longer reading
    # hides a host name at worst, the shorter one would leak most of a password.
    out = redactor.redact("postgresql://app:p@ss/w0rd!@db.internal:5432/prod")
    assert out == "postgresql://app:<PASSWORD>@db.internal:5432/prod"
    assert redactor.redact("redis://:pw-9x@cache:6379/0") == "redis://:<PASSWORD>@cache:6379/0"
    for text in ("https://example.com:443/profile/@alice", "http://localhost:5173/@vite/client"):
        assert redactor.redact(text) == text  # a port and a path, not user:password


def test_lower_case_iban_needs_the_word_iban(redactor: Redactor) -> None:
    # be57eb975729fae9 passes the Belgian length and mod-97 check by chance: a hex id
    # (LangChain run ids, span ids) must not become <IBAN> just for being lower case.
    assert iban_is_valid("be57eb975729fae9")
    assert redactor.redact("span be57eb975729fae9") == "span be57eb975729fae9"
    assert redactor.redact("IBAN be68 5390 0754 7034") == "IBAN <IBAN>"
    two = "iban de89 3704 0044 0532 0130 00, iban nl91abna0417164300"
    assert redactor.redact(two) == "iban <IBAN>, iban <IBAN>"


def test_invisible_characters_are_read_through_and_kept_outside_values(
    redactor: Redactor,
) -> None:
    card = "4111\u200b1111\u200b1111\u200b1111"
    text = f"mail jo\u200bhn@example.com \u200bnow, 👨\u200d👩\u200d👧, card {card}"
    out = redactor.redact(text)
    assert out == "mail <EMAIL> \u200bnow, 👨\u200d👩\u200d👧, card <CREDIT_CARD>"
    # A run right before or after a value stays where it was.
    assert redactor.redact("\ufeffa@b.com\u200b") == "\ufeff<EMAIL>\u200b"
    plain = "zero\u200bwidth and Persian \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    assert redactor.redact(plain) == plain


# ------------------------------------------------------------------------------ config


def test_extra_patterns_and_placeholder_name() -> None:
    r = Redactor(RedactionConfig(extra_patterns={"employee_id": r"EMP-[0-9]{6}"}))
    assert r.redact("ticket from EMP-123456 and EMP-12") == "ticket from <EMPLOYEE_ID> and EMP-12"
    assert r.counts == {"employee_id": 1}


def test_extra_pattern_named_like_a_builtin_replaces_it() -> None:
    r = Redactor(RedactionConfig(extra_patterns={"email": r"[a-z]+@corp\.internal"}))
    assert r.redact("a@corp.internal b@example.com") == "<EMAIL> b@example.com"


def test_invalid_regex_error_names_the_pattern() -> None:
    with pytest.raises(ValidationError) as exc:
        RedactionConfig(extra_patterns={"order": "ORD-[0-9"})
    message = str(exc.value)
    assert "extra_patterns['order']" in message and "ORD-[0-9" in message
    assert "position" in message


def test_pattern_matching_empty_string_is_rejected() -> None:
    with pytest.raises(ValidationError, match="matches the empty string"):
        RedactionConfig(extra_patterns={"digits": "[0-9]*"})
    with pytest.raises(ValidationError, match="must be a letter"):
        RedactionConfig(extra_patterns={"1bad": "x"})


def test_disabled_detectors_validated_with_suggestion() -> None:
    with pytest.raises(ValidationError, match=r"did you mean phone\?"):
        RedactionConfig(disabled_detectors=["phones"])
    config = RedactionConfig(disabled_detectors=["PHONE", "<ip_address>"])
    assert config.disabled_detectors == ["phone", "ip_address"]
    r = Redactor(config)
    assert "phone" not in r.detector_names and "email" in r.detector_names
    text = "+44 20 7946 0958 at 10.0.0.1 by a@b.com"
    assert r.redact(text) == text.replace("a@b.com", "<EMAIL>")


def test_unknown_config_key_is_rejected_with_hint() -> None:
    with pytest.raises(ValidationError, match="did you mean allow_list"):
        RedactionConfig.model_validate({"allowlist": ["x"]})


def test_allow_list_keeps_exact_values() -> None:
    r = Redactor(RedactionConfig(allow_list=["support@acme.io", "127.0.0.1"]))
    out = r.redact("mail support@acme.io or jane@acme.io; bind 127.0.0.1 not 10.0.0.1")
    assert out == "mail support@acme.io or <EMAIL>; bind 127.0.0.1 not <IP_ADDRESS>"
    assert r.counts == {"email": 1, "ip_address": 1}


def test_redactor_accepts_a_plain_dict_config() -> None:
    r = Redactor({"disabled_detectors": ["email"]})
    assert r.redact("a@b.com") == "a@b.com"


def test_custom_callable_runs_last_and_is_counted() -> None:
    seen: list[str] = []

    def names(text: str) -> str:
        seen.append(text)
        return text.replace("Alice Smith", "<PERSON>")

    r = Redactor(custom=names)
    assert r.redact("Alice Smith <alice@x.com>") == "<PERSON> <<EMAIL>>"
    assert seen == ["Alice Smith <<EMAIL>>"]
    assert r.counts == {"email": 1, "custom": 1}


def test_custom_from_import_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIGURABLE_AGENTS_ALLOW_CONFIG_CODE", "tests, no_such_module_xyz")
    r = Redactor(RedactionConfig(custom="tests.trusted_redactor:names"))
    assert r.redact("Alice Smith a@b.com") == "<PERSON> <EMAIL>"
    with pytest.raises(ValidationError, match="import path"):
        RedactionConfig(custom="not a path")
    with pytest.raises(ValueError, match="cannot be imported"):
        Redactor(RedactionConfig(custom="no_such_module_xyz:fn"))
    with pytest.raises(ValueError, match="not a plain Python function"):
        Redactor(RedactionConfig(custom="tests.trusted_redactor:run_shell"))


def test_failing_custom_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    def broken(text: str) -> str:
        raise RuntimeError("presidio crashed")

    r = Redactor(custom=broken)
    assert r.redact("Alice called") == REDACTION_FAILED
    assert r.redact_with_counts("x")[1] == {"errors": 1}
    assert "redaction failed" in caplog.text
    r2 = Redactor(custom=lambda text: None)  # type: ignore[arg-type, return-value]
    assert r2.redact("Alice") == REDACTION_FAILED


# ------------------------------------------------------------------------------ counts


def test_counts_accumulate_and_reset(redactor: Redactor) -> None:
    r = Redactor()
    out, counts = r.redact_with_counts("a@b.com c@d.org 10.0.0.1")
    assert out == "<EMAIL> <EMAIL> <IP_ADDRESS>"
    assert counts == {"email": 2, "ip_address": 1}
    assert r.counts == {}  # redact_with_counts leaves the running totals alone
    r.redact("a@b.com")
    assert r.reset_counts() == {"email": 1}
    assert r.counts == {}


def test_counts_are_thread_safe() -> None:
    r = Redactor()
    text = "mail a@b.com, card 4111 1111 1111 1111, ip 10.0.0.1"

    def work() -> None:
        for _ in range(200):
            assert r.redact(text) == "mail <EMAIL>, card <CREDIT_CARD>, ip <IP_ADDRESS>"

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.counts == {"email": 1600, "credit_card": 1600, "ip_address": 1600}


# ----------------------------------------------------------------------------- objects


def test_redact_obj_walks_containers_and_keys(redactor: Redactor) -> None:
    obj = {
        "user": {"email": "jane@example.com", "phones": ["+44 20 7946 0958", "n/a"]},
        "jane@example.com": 1,
        "pair": ("10.0.0.1", 5),
        "tags": {"a@b.com"},
        "frozen": frozenset({"x"}),
        "ok": True,
        "ratio": 0.5,
        "none": None,
        "card_as_int": 4111111111111111,
        "order_as_int": 4111111111111112,
        "small": 42,
        "raw": b"token a@b.com \xff",
    }
    out = redactor.redact_obj(obj)
    assert out == {
        "user": {"email": "<EMAIL>", "phones": ["<PHONE>", "n/a"]},
        "<EMAIL>": 1,
        "pair": ("<IP_ADDRESS>", 5),
        "tags": {"<EMAIL>"},
        "frozen": frozenset({"x"}),
        "ok": True,
        "ratio": 0.5,
        "none": None,
        "card_as_int": "<CREDIT_CARD>",
        "order_as_int": 4111111111111112,
        "small": 42,
        "raw": "token <EMAIL> \ufffd",
    }
    assert obj["user"]["email"] == "jane@example.com"  # the input is not modified


def test_redact_obj_key_collisions_keep_both_values(redactor: Redactor) -> None:
    out = redactor.redact_obj({"a@x.com": 1, "b@y.com": 2, "c@z.com": 3})
    assert out == {"<EMAIL>": 1, "<EMAIL>#2": 2, "<EMAIL>#3": 3}


def test_redact_obj_cycles_depth_and_unknown_objects(redactor: Redactor) -> None:
    loop: list[object] = ["a@b.com"]
    loop.append(loop)
    assert redactor.redact_obj(loop) == ["<EMAIL>", "<CYCLE>"]
    deep: object = "a@b.com"
    for _ in range(150):
        deep = [deep]
    out = redactor.redact_obj(deep)
    for _ in range(100):
        out = out[0]
    assert out == "<MAX_DEPTH>"

    class Opaque:
        pass

    thing = Opaque()
    assert redactor.redact_obj(thing) is thing
    shared = ["a@b.com"]
    assert redactor.redact_obj([shared, shared]) == [["<EMAIL>"], ["<EMAIL>"]]


# ------------------------------------------------------------------------- weird input


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (b"mail a@b.com", "mail <EMAIL>"),
        (b"\xff\xfe a@b.com", "\ufffd\ufffd <EMAIL>"),
        (bytearray(b"10.0.0.1"), "<IP_ADDRESS>"),
        (12345, "12345"),
        ("", ""),
        ("short", "short"),
        ("\ud800 lone surrogate a@b.com", "\ud800 lone surrogate <EMAIL>"),
        # Non-ASCII digits are not detected (a documented gap): full-width 4111 1111.
        ("日本語 a@b.com \uff14\uff11\uff11\uff11", "日本語 <EMAIL> \uff14\uff11\uff11\uff11"),
    ],
)
def test_odd_input_never_raises(redactor: Redactor, value: object, expected: str) -> None:
    assert redactor.redact(value) == expected


def test_object_whose_str_fails_is_replaced(redactor: Redactor) -> None:
    class Bad:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert redactor.redact(Bad()) == REDACTION_FAILED


# Repeated units that make a backtracking regex engine blow up if a pattern has
# nested or overlapping quantifiers (each unit is a prefix some detector reacts to).
ADVERSARIAL_UNITS = {
    "digits": "1",
    "digits and spaces": "1 ",
    "at signs": "a@",
    "dotted labels": "b.",
    "dotted digits": "1.",
    "hex and colons": "a:",
    "pem begin without end": "-----BEGIN PRIVATE KEY-----\n",
    "sk run": "sk-a",
    "bearer run": "Bearer aaaaaaaa ",
    "plus runs": "+1 ",
    "parentheses": "(0",
    "iban-ish": "GB82 ",
    "jwt-ish": "eyJ.",
    "url-ish": "x://a:",
    "url with slashes": "x://a:b/",
    "url with empty user": "://:a@",
    "basic-ish": "Basic QUJD ",
    "iban keyword": "iban gb82 ",
    "zero-width": "a\u200b",
    "slack-ish": "xoxb-123456-",
    "hf-ish": "hf_A",
}


def _repeat_to(unit: str, size: int) -> str:
    return unit * (size // len(unit))


def test_adversarial_megabyte_strings_finish_quickly(redactor: Redactor) -> None:
    """Catastrophic (exponential or quadratic) backtracking would take minutes here."""
    for name, unit in ADVERSARIAL_UNITS.items():
        text = _repeat_to(unit, 1_000_000)
        start = time.perf_counter()
        out = redactor.redact(text)
        elapsed = time.perf_counter() - start
        assert isinstance(out, str)
        assert elapsed < 10, f"{name}: {elapsed:.1f}s"


def test_five_megabyte_string_finishes_quickly(redactor: Redactor) -> None:
    size = 5_000_000 // len(ADVERSARIAL_UNITS)
    text = "".join(_repeat_to(unit, size) + "\n" for unit in ADVERSARIAL_UNITS.values())
    text += "card 4111 1111 1111 1111 mail a@b.com"
    start = time.perf_counter()
    out = redactor.redact(text)
    elapsed = time.perf_counter() - start
    print(f"\n5 MB adversarial mix: {elapsed:.2f}s")
    assert out.endswith("card <CREDIT_CARD> mail <EMAIL>")
    assert elapsed < 30


def test_throughput_report(redactor: Redactor) -> None:
    """Prints MB/s for typical payloads (informational; benchmarks/ holds the targets)."""
    prose = "The agent summarised the quarterly report and suggested three follow-ups. " * 13
    mixed = prose + (
        "Contact john.doe@example.com or +44 20 7946 0958; order #12345678 shipped "
        "2024-03-15T10:20:30Z (v2.15.0), paid with 4111 1111 1111 1111.\n"
    )
    numeric = (
        "Revenue grew 12.5% to $1,234.56 on 2024-03-15 at 10:20:30; order #12345678, v2.15.0. "
    )
    payloads = {"prose": prose * 1000, "prose + PII line": mixed * 1000, "numeric": numeric * 12000}
    for name, text in payloads.items():
        start = time.perf_counter()
        out = redactor.redact(text)
        elapsed = max(time.perf_counter() - start, 1e-9)
        mb = len(text.encode()) / 1e6
        print(f"\nthroughput {name:18s} {mb:5.2f} MB {mb / elapsed:7.1f} MB/s")
        assert "john.doe@example.com" not in out
    start = time.perf_counter()
    for _ in range(10_000):
        redactor.redact("node_summarize")
    per_call = (time.perf_counter() - start) / 10_000 * 1e6
    print(f"short string without candidates: {per_call:.1f} us per call")
