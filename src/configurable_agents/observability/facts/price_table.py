"""Price data: the price types and the loader of price tables (ours and the user's).

A price table is YAML data in USD per 1M tokens (``data/pricing_overrides.yaml`` is
ours; users supply the same format inline or as a file). Loading validates every
value at the edge and raises :class:`ConfigError` naming the bad field, so the
price book can trust what it gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from configurable_agents.config.loader import ConfigError

__all__ = [
    "SOURCE_CACHE_HIT",
    "SOURCE_GENAI_PRICES",
    "SOURCE_OVERRIDE",
    "SOURCE_UNPRICED",
    "SOURCE_USER",
    "ModelPricing",
    "PriceTier",
    "TokenPrices",
    "load_override_table",
    "load_price_table",
]

# Where a price came from (CostEstimate.source / ModelPricing.source).
SOURCE_USER = "user"
SOURCE_OVERRIDE = "override"
SOURCE_GENAI_PRICES = "genai-prices"
SOURCE_UNPRICED = "unpriced"
SOURCE_CACHE_HIT = "cache-hit"

_PRICE_KEYS = ("input", "output", "cache_read", "cache_write", "cache_write_1h",
               "input_audio", "output_audio")


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """USD per 1M tokens. ``None`` means "bill like the plain input/output token"."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    input_audio: Decimal | None = None
    output_audio: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Prices for a request whose total input tokens exceed ``above`` (whole request)."""

    above: int
    prices: TokenPrices


@dataclass(frozen=True, slots=True)
class ModelPricing:
    """Resolved prices of one model: base prices plus long-context tiers."""

    base: TokenPrices
    tiers: tuple[PriceTier, ...] = ()
    source: str = SOURCE_OVERRIDE
    matched: str = ""  # the table key or genai-prices model id that matched
    provider: str | None = None  # genai-prices provider id, or the table key's provider

    def tier_for(self, input_tokens: int) -> PriceTier | None:
        """The tier in force for a request with ``input_tokens`` total input (the cliff)."""
        chosen = None
        for tier in self.tiers:  # sorted ascending
            if input_tokens > tier.above:
                chosen = tier
        return chosen

    def prices_for(self, input_tokens: int) -> TokenPrices:
        tier = self.tier_for(input_tokens)
        return tier.prices if tier else self.base


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ConfigError(f"{where}: expected a number (USD per 1M tokens), got {value!r}")
    try:
        result = Decimal(str(value))
    except ArithmeticError:
        raise ConfigError(f"{where}: {value!r} is not a number") from None
    if not result.is_finite() or result < 0:
        raise ConfigError(f"{where}: price must be a non-negative number, got {value!r}")
    return result


def _token_prices(raw: Mapping[str, Any], where: str, base: TokenPrices | None) -> TokenPrices:
    extra = "tiers" if base is None else "above"
    unknown = set(raw) - {*_PRICE_KEYS, extra}
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{sorted(unknown)[0]}'; valid keys are: "
            f"{', '.join((*_PRICE_KEYS, extra))}"
        )
    values = {k: _decimal(raw[k], f"{where}.{k}") for k in _PRICE_KEYS if raw.get(k) is not None}
    if base is not None:
        return replace(base, **values)
    missing = [k for k in ("input", "output") if k not in values]
    if missing:
        raise ConfigError(f"{where}: '{missing[0]}' price is required (USD per 1M tokens)")
    return TokenPrices(**values)


def _model_pricing(name: str, raw: Any, source: str) -> ModelPricing:
    where = f"models.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of prices, got {raw!r}")
    base = _token_prices(raw, where, None)
    tiers: list[PriceTier] = []
    raw_tiers = raw.get("tiers") or []
    if not isinstance(raw_tiers, list):
        raise ConfigError(f"{where}.tiers: expected a list of {{above: N, input: ..., ...}}")
    for i, raw_tier in enumerate(raw_tiers):
        tier_where = f"{where}.tiers[{i}]"
        if not isinstance(raw_tier, Mapping) or not isinstance(raw_tier.get("above"), int):
            raise ConfigError(f"{tier_where}: needs 'above: <input tokens>' and prices")
        tiers.append(PriceTier(raw_tier["above"], _token_prices(raw_tier, tier_where, base)))
    tiers.sort(key=lambda t: t.above)
    provider, _, model = name.rpartition("/")
    return ModelPricing(base, tuple(tiers), source, matched=model, provider=provider or None)


def load_price_table(
    prices: Mapping[str, Any] | str | Path | None, source: str = SOURCE_USER
) -> dict[str, ModelPricing]:
    """Parse a price table (mapping, or path to a YAML file) -> {lowercase key: pricing}.

    The mapping is ``{"models": {name: {...}}}``; a mapping without ``models`` is taken
    as the models mapping itself. Raises :class:`ConfigError` naming the bad field.
    """
    if prices is None:
        return {}
    if isinstance(prices, str | Path):
        path = Path(prices)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"price file {path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"price file {path}: invalid YAML ({exc})") from None
        try:
            return load_price_table(data or {}, source)
        except ConfigError as exc:
            raise ConfigError(f"price file {path}: {exc}") from None
    if not isinstance(prices, Mapping):
        raise ConfigError(f"prices: expected a mapping or a YAML file path, got {prices!r}")
    models = prices.get("models", prices) if "models" in prices else prices
    if not isinstance(models, Mapping):
        raise ConfigError("prices.models: expected a mapping of model name -> prices")
    return {str(name).strip().lower(): _model_pricing(str(name), raw, source)
            for name, raw in models.items()}


def load_override_table() -> dict[str, ModelPricing]:
    """Our shipped override table (``data/pricing_overrides.yaml``)."""
    text = (resources.files("configurable_agents") / "data" / "pricing_overrides.yaml").read_text(
        encoding="utf-8"
    )
    return load_price_table(yaml.safe_load(text), SOURCE_OVERRIDE)

