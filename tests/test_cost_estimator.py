"""Pricing: sources and precedence, normalisation, tiers, cache, reasoning, unpriced, CLI."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from configurable_agents.commands.prices_cmd import prices as prices_command
from configurable_agents.config.loader import ConfigError
from configurable_agents.observability.facts import cost_estimator, price_table
from configurable_agents.observability.facts.cost_estimator import (
    PriceBook,
    calculate_cost,
    candidate_names,
    estimate_cost,
    load_price_table,
)
from configurable_agents.observability.facts.usage import TokenUsage


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


def usage(i: int, o: int, **kw: int) -> TokenUsage:
    return TokenUsage(input=i, output=o, total=i + o, **kw)


# --- the exact checks --------------------------------------------------------------------


def test_seed_api_gemini_flash() -> None:
    assert calculate_cost("gemini-2.5-flash", 1000, 500) == 0.00155
    assert calculate_cost("gemini-1.0-pro", 1_000_000, 1_000_000) == 2.0


def test_claude_sonnet_4_cache_reads(book: PriceBook) -> None:
    cost = book.estimate_cost(usage(10_000, 500, cache_read=8_000), "claude-sonnet-4")
    assert cost.amount == 0.0159
    assert (cost.priced, cost.source) == (True, "genai-prices")
    assert cost.breakdown.input == pytest.approx(0.006)
    assert cost.breakdown.cache_read == pytest.approx(0.0024)
    assert cost.breakdown.output == pytest.approx(0.0075)


def test_gemini_25_pro_tier_cliff(book: PriceBook) -> None:
    at = book.estimate_cost(usage(200_000, 1_000), "gemini-2.5-pro")
    above = book.estimate_cost(usage(200_001, 1_000), "gemini-2.5-pro")
    assert at.amount == pytest.approx(200_000 * 1.25e-6 + 1_000 * 10e-6)  # 0.26
    assert at.tier_above is None
    # One token more and the WHOLE request is billed at the long-context prices.
    assert above.amount == pytest.approx(200_001 * 2.50e-6 + 1_000 * 15e-6)  # ~0.515
    assert above.tier_above == 200_000
    assert above.source == "override"
    cached = book.estimate_cost(usage(300_000, 0, cache_read=100_000), "gemini-2.5-pro")
    assert cached.breakdown.cache_read == pytest.approx(100_000 * 0.25e-6)


def test_gemini_3_pro_and_15_tiers(book: PriceBook) -> None:
    assert book.estimate_cost(usage(250_000, 1_000_000), "gemini-3-pro-preview").amount == (
        pytest.approx(250_000 * 4e-6 + 18.0))
    assert book.estimate_cost(usage(128_001, 0), "gemini-1.5-flash").amount == pytest.approx(
        128_001 * 0.15e-6)
    assert book.estimate_cost(usage(128_000, 0), "gemini-1.5-flash").amount == pytest.approx(
        128_000 * 0.075e-6)


@pytest.mark.parametrize("model", ["o3", "o4-mini"])
def test_reasoning_priced_as_output_once(book: PriceBook, model: str) -> None:
    with_reasoning = book.estimate_cost(usage(1_000, 2_000, reasoning=1_500), model, "openai")
    without = book.estimate_cost(usage(1_000, 2_000), model, "openai")
    assert with_reasoning.amount == without.amount  # included in output, not added
    out_price = {"o3": 8.0, "o4-mini": 4.4}[model]
    assert with_reasoning.breakdown.reasoning == pytest.approx(1_500 * out_price / 1e6)
    assert with_reasoning.breakdown.output == pytest.approx(500 * out_price / 1e6)
    b = with_reasoning.breakdown
    assert b.input + b.cache_read + b.cache_write + b.output + b.reasoning == pytest.approx(
        with_reasoning.amount)


def test_anthropic_1h_cache_writes_cost_more(book: PriceBook) -> None:
    five = book.estimate_cost(usage(1_000, 0, cache_write=1_000), "claude-sonnet-4-20250514")
    hour = book.estimate_cost(usage(1_000, 0, cache_write=1_000, cache_write_1h=1_000),
                              "claude-sonnet-4-20250514")
    assert five.amount == pytest.approx(1_000 * 3.75e-6)
    assert hour.amount == pytest.approx(1_000 * 6e-6)


def test_user_price_overrides_both_tables(tmp_path: Path) -> None:
    table = {"models": {
        "gemini-2.5-flash": {"input": 1, "output": 2},  # also in our override table
        "gpt-4o": {"input": 0.5, "output": 1, "cache_read": 0.1},  # genai-prices knows it
        "my-finetune": {"input": 10, "output": 20},
    }}
    user = PriceBook(table)
    flash = user.estimate_cost(usage(1_000_000, 1_000_000), "models/gemini-2.5-flash-001")
    assert (flash.amount, flash.source) == (3.0, "user")
    # A user price for gpt-4o also prices its dated snapshot.
    dated = user.estimate_cost(usage(2_000_000, 0, cache_read=1_000_000), "gpt-4o-2024-08-06")
    assert (dated.amount, dated.source, dated.matched_model) == (0.6, "user", "gpt-4o")
    assert user.calculate_cost("my-finetune", 1_000, 1_000) == 0.03

    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  gpt-4o:\n    input: 0.5\n    output: 1\n", encoding="utf-8")
    from_file = PriceBook(str(path)).estimate_cost(usage(1_000_000, 0), "openai/gpt-4o")
    assert (from_file.amount, from_file.source) == (0.5, "user")


def test_provider_specific_user_price() -> None:
    book = PriceBook({"azure/gpt-4o": {"input": 1, "output": 1}})
    assert book.estimate_cost(usage(1_000_000, 0), "gpt-4o", "azure").amount == 1.0
    other = book.estimate_cost(usage(1_000_000, 0), "gpt-4o", "openai")
    assert (other.amount, other.source) == (2.5, "genai-prices")


def test_user_tiers_and_inherited_tier_prices() -> None:
    book = PriceBook({"m": {"input": 1, "output": 2, "cache_read": 0.5,
                            "tiers": [{"above": 100, "input": 3}]}})
    pricing = book.resolve("m")
    assert pricing is not None and pricing.tiers[0].prices.output == Decimal("2")
    cost = book.estimate_cost(usage(1_000_000, 1_000_000, cache_read=500_000), "m")
    assert cost.amount == pytest.approx(500_000 * 3e-6 + 500_000 * 0.5e-6 + 2.0)


# --- normalisation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "provider", "matched"),
    [
        ("models/gemini-2.5-flash", None, "gemini-2.5-flash"),
        ("gemini-2.5-flash-001", None, "gemini-2.5-flash"),
        ("vertex_ai/gemini-2.5-pro", None, "gemini-2.5-pro"),
        ("google/gemini-2.5-flash-lite", None, "gemini-2.5-flash-lite"),
        ("gpt-4o-2024-08-06", None, "gpt-4o"),
        ("openai/gpt-4o", None, "gpt-4o"),
        ("claude-sonnet-4-20250514", None, "claude-sonnet-4-0"),
        ("anthropic/claude-sonnet-4-20250514", None, "claude-sonnet-4-0"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", None, "claude-sonnet-4-0"),
        ("claude-sonnet-4@20250514", None, "claude-sonnet-4-0"),
        ("o3-2025-04-16", "openai", "o3"),
    ],
)
def test_name_normalisation(book: PriceBook, model: str, provider: str | None,
                            matched: str) -> None:
    pricing = book.resolve(model, provider)
    assert pricing is not None, model
    assert pricing.matched == matched


def test_candidate_names_order() -> None:
    assert candidate_names("us.anthropic.claude-sonnet-4-20250514-v1:0") == [
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "claude-sonnet-4-20250514",
        "claude-sonnet-4",
    ]
    assert candidate_names("models/gemini-2.5-flash-preview-05-20") == [
        "models/gemini-2.5-flash-preview-05-20", "gemini-2.5-flash-preview-05-20",
        "gemini-2.5-flash"]


def test_bedrock_provider_uses_bedrock_prices(book: PriceBook) -> None:
    pricing = book.resolve("us.anthropic.claude-sonnet-4-20250514-v1:0", "bedrock")
    assert pricing is not None and pricing.provider == "aws"
    assert pricing.base.input == Decimal("3")


# --- genai-prices specifics ----------------------------------------------------------------


def test_genai_prices_history_and_tiers(book: PriceBook) -> None:
    before = datetime(2026, 3, 1, tzinfo=UTC)
    after = datetime(2026, 4, 1, tzinfo=UTC)
    big = usage(300_000, 0)
    assert book.estimate_cost(big, "claude-sonnet-4-6", "anthropic", before).amount == (
        pytest.approx(300_000 * 6e-6))  # long-context tier before 2026-03-13
    assert book.estimate_cost(big, "claude-sonnet-4-6", "anthropic", after).amount == (
        pytest.approx(300_000 * 3e-6))


def test_never_starts_the_genai_prices_updater(book: PriceBook) -> None:
    from genai_prices import data_snapshot

    book.estimate_cost(usage(1, 1), "gpt-4o")
    assert data_snapshot._custom_snapshot is None
    assert not any(t.name.lower().startswith("genai") for t in threading.enumerate())


# --- unpriced, cache hits -------------------------------------------------------------------


def test_unknown_model_unpriced_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    cost_estimator._warned_unpriced.discard("acme-model-x")
    book = PriceBook()
    with caplog.at_level(logging.WARNING, logger=cost_estimator.__name__):
        first = book.estimate_cost(usage(100, 100), "acme-model-x")
        book.estimate_cost(usage(5, 5), "acme-model-x")
        PriceBook().estimate_cost(usage(5, 5), "acme-model-x")
    assert (first.amount, first.priced, first.source) == (0.0, False, "unpriced")
    warnings = [r for r in caplog.records if "acme-model-x" in r.getMessage()]
    assert len(warnings) == 1
    assert calculate_cost("acme-model-x", 10, 10) == 0.0
    assert estimate_cost(usage(1, 1), None).source == "unpriced"


def test_cache_hit_is_free_even_for_unknown_models(book: PriceBook) -> None:
    hit = TokenUsage(input=10, output=10, total=20, llm_cache_hit=True, method="llm_cache")
    cost = book.estimate_cost(hit, "acme-never-priced")
    assert (cost.amount, cost.priced, cost.source) == (0.0, True, "cache-hit")


def test_estimated_usage_is_carried_to_the_estimate(book: PriceBook) -> None:
    est = TokenUsage(input=1_000, output=500, total=1_500, estimated=True, method="chars/4")
    cost = book.estimate_cost(est, "gemini-2.5-flash")
    assert cost.estimated and cost.amount == 0.00155


# --- price files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"m": {"input": 1}}, "models.m: 'output' price is required"),
        ({"m": {"input": 1, "output": -1}}, "models.m.output: price must be a non-negative"),
        ({"m": {"input": 1, "output": 1, "cached": 1}}, "models.m: unknown key 'cached'"),
        ({"m": {"input": 1, "output": 1, "tiers": [{"input": 2}]}}, "models.m.tiers[0]"),
        ({"m": {"input": "cheap", "output": 1}}, "models.m.input: 'cheap' is not a number"),
    ],
)
def test_bad_price_tables_are_config_errors(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_price_table(table)


def test_bad_price_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("models:\n  m: {input: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"p\.yaml: models\.m"):
        PriceBook(path)
    with pytest.raises(ConfigError, match="cannot read"):
        PriceBook(tmp_path / "missing.yaml")


def test_shipped_override_table_has_the_seed_models() -> None:
    table = price_table.load_override_table()
    seed = {"gemini-3-pro": (2, 12), "gemini-3-flash": (0.5, 3), "gemini-2.5-pro": (1.25, 10),
            "gemini-2.5-flash": (0.30, 2.50), "gemini-2.5-flash-lite": (0.10, 0.40),
            "gemini-1.5-pro": (1.25, 5), "gemini-1.5-flash": (0.075, 0.30),
            "gemini-1.5-flash-8b": (0.0375, 0.15), "gemini-1.0-pro": (0.50, 1.50)}
    for name, (inp, out) in seed.items():
        assert (table[name].base.input, table[name].base.output) == (
            Decimal(str(inp)), Decimal(str(out))), name
    assert table["gemini-2.5-flash"].base.cache_read == Decimal("0.03")
    assert table["gemini-3-flash"].base.cache_read == Decimal("0.05")


# --- concurrency ------------------------------------------------------------------------------


def test_thread_safe_cached_resolution() -> None:
    book = PriceBook()
    results: list[float] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for model in ("gpt-4o", "gemini-2.5-flash", "claude-sonnet-4", "acme-unknown"):
                results.append(book.estimate_cost(usage(1_000, 1_000), model).amount)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(set(results)) == sorted({0.0, 0.0125, 0.0028, 0.018})
    first = book.resolve("gpt-4o")
    assert book.resolve("gpt-4o") is first  # cached, not re-resolved


# --- CLI --------------------------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("prices")(prices_command)

    @app.callback()
    def main() -> None:  # keeps "prices" a subcommand, as in the real CLI
        pass

    return app


def test_prices_cli_shows_tiers_and_source() -> None:
    result = CliRunner().invoke(_cli(), ["prices", "models/gemini-2.5-pro"],
                                env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "gemini-2.5-pro (override)" in result.output
    assert "$1.25" in result.output and "$0.125" in result.output
    assert "> 200,000" in result.output and "$15" in result.output


def test_prices_cli_user_file_and_unpriced(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("models:\n  acme-1:\n    input: 7\n    output: 9\n", encoding="utf-8")
    ok = CliRunner().invoke(_cli(), ["prices", "acme-1", "--prices", str(path)],
                            env={"COLUMNS": "160"})
    assert ok.exit_code == 0, ok.output
    assert "acme-1 (user)" in ok.output and "$7" in ok.output and "$9" in ok.output
    missing = CliRunner().invoke(_cli(), ["prices", "acme-2"])
    assert missing.exit_code == 1
    assert "No price known for 'acme-2'" in missing.output
