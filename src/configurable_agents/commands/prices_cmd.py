"""``configurable-agents prices MODEL [--provider P] [--prices FILE]``.

Shows the per-1M-token prices the cost estimator would apply to MODEL: which
source won (user / override / genai-prices), which name matched after
normalisation, and the long-context tiers. Exit code 1 when the model is unpriced.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from configurable_agents.commands.options import FORMAT, OUTPUT, Format, check_output, emit

if TYPE_CHECKING:  # the price book loads genai-prices' data: only inside the command
    from configurable_agents.observability.facts.cost_estimator import TokenPrices
    from configurable_agents.observability.facts.price_table import ModelPricing

_COLUMNS = (
    ("input", "Input"),
    ("cache_read", "Cache read"),
    ("cache_write", "Write 5m"),
    ("cache_write_1h", "Write 1h"),
    ("output", "Output"),
    ("input_audio", "Audio in"),
    ("output_audio", "Audio out"),
)


def _fmt(value: Decimal | None, fallback: Decimal | None) -> str:
    if value is None:
        return f"[dim]{_money(fallback)}[/dim]" if fallback is not None else "-"
    return _money(value)


def _money(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return f"${value.normalize():f}"


def _row(prices: TokenPrices) -> list[str]:
    # A missing price is billed like its fallback (shown dimmed): see cost_estimator.
    fallbacks = {
        "cache_read": prices.input,
        "cache_write": prices.input,
        "cache_write_1h": prices.cache_write if prices.cache_write is not None else prices.input,
        "input_audio": prices.input,
        "output_audio": prices.output,
    }
    return [_fmt(getattr(prices, key), fallbacks.get(key)) for key, _ in _COLUMNS]


def prices(
    model: str = typer.Argument(..., help="Model name as your app uses it, e.g. gpt-4o."),
    provider: str | None = typer.Option(None, "--provider", "-p",
                                        help="Provider, e.g. openai, anthropic, google, bedrock."),
    prices_file: Path | None = typer.Option(None, "--prices",
                                            help="Your price file (YAML, USD per 1M tokens)."),
    fmt: Format = FORMAT,
    output: Path | None = OUTPUT,
) -> None:
    """Show the resolved per-1M-token prices, tiers and source for MODEL."""
    from configurable_agents.config.loader import ConfigError
    from configurable_agents.observability.facts.cost_estimator import PriceBook

    check_output(output)
    try:
        book = PriceBook(prices_file)
    except ConfigError as exc:
        Console(stderr=True).print(f"[red]Invalid price file[/red]\n{exc}", highlight=False)
        raise typer.Exit(code=2) from None
    pricing = book.resolve(model, provider)
    if pricing is None:
        Console(stderr=True).print(
            f"[yellow]No price known for {model!r}[/yellow]: calls are logged as unpriced. "
            "Add it to a price file (see the docs' Cost page).",
            highlight=False,
        )
        raise typer.Exit(code=1)
    emit(fmt, output, data=lambda: _pricing_data(model, pricing),
         csv_text=lambda: _pricing_csv(model, pricing),
         table=lambda console: _print_table(model, pricing, console))


def _prices_data(prices: TokenPrices) -> dict[str, str | None]:
    """Decimal strings (exact), ``None`` where the price falls back to input/output."""
    return {key: None if (v := getattr(prices, key)) is None else f"{v.normalize():f}"
            for key, _ in _COLUMNS}


def _pricing_data(model: str, pricing: ModelPricing) -> dict[str, Any]:
    return {
        "model": model, "matched": pricing.matched, "source": pricing.source,
        "provider": pricing.provider, "unit": "USD per 1M tokens",
        "base": _prices_data(pricing.base),
        "tiers": [{"above_input_tokens": t.above, **_prices_data(t.prices)}
                  for t in pricing.tiers],
    }


def _pricing_csv(model: str, pricing: ModelPricing) -> str:
    from configurable_agents.commands.options import to_csv

    head = {"model": model, "matched": pricing.matched, "source": pricing.source,
            "provider": pricing.provider}
    rows = [{**head, "above_input_tokens": 0, **_prices_data(pricing.base)}]
    rows += [{**head, "above_input_tokens": t.above, **_prices_data(t.prices)}
             for t in pricing.tiers]
    return to_csv(rows)


def _print_table(model: str, pricing: ModelPricing, console: Console) -> None:
    where = f" via {pricing.provider}" if pricing.provider else ""
    table = Table(
        title=f"{model} -> {pricing.matched} ({pricing.source}{where}), USD per 1M tokens",
        title_justify="left",
    )
    table.add_column("Input size", no_wrap=True)
    for _, header in _COLUMNS:
        table.add_column(header, justify="right")
    table.add_row("base", *_row(pricing.base))
    for tier in pricing.tiers:
        table.add_row(f"> {tier.above:,}", *_row(tier.prices))
    console.print(table)
    if pricing.tiers:
        console.print("A tier prices the whole request once its input tokens exceed the "
                      "threshold.", style="dim")
    console.print("Dimmed: no own price; billed at the input/output price shown.", style="dim")
