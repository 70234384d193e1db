"""genai-prices -> our :class:`ModelPricing`: lookup in its bundled snapshot, conversion.

Only the bundled data snapshot is read; genai-prices' network updater
(``UpdatePrices``) is never started, so pricing works offline and starts no thread.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from configurable_agents.observability.facts.model_names import genai_provider_id
from configurable_agents.observability.facts.price_table import (
    SOURCE_GENAI_PRICES,
    ModelPricing,
    PriceTier,
    TokenPrices,
)

__all__ = ["genai_lookup", "genai_pricing"]

_ZERO = Decimal(0)



def genai_lookup(candidates: list[str], provider: str | None) -> tuple[Any, Any] | None:
    """(genai Provider, ModelInfo) for the first candidate genai-prices knows."""
    from genai_prices import data_snapshot  # bundled data; never starts UpdatePrices

    snapshot = data_snapshot.get_snapshot()
    provider_id = genai_provider_id(provider)
    attempts = [provider_id, None] if provider_id else [None]
    for pid in attempts:
        for name in candidates:
            try:
                return snapshot.find_provider_model(name, None, pid, None)
            except LookupError:
                continue
    return None


def genai_pricing(model_price: Any, matched: str, provider_id: str) -> ModelPricing:
    """Convert a genai-prices ``ModelPrice`` (per-key TieredPrices) to our ModelPricing."""
    from genai_prices.types import TieredPrices

    sources = {
        "input": "input_mtok",
        "output": "output_mtok",
        "cache_read": "cache_read_mtok",
        "cache_write": ("cache_write_mtok", "cache_write_5m_mtok"),
        "cache_write_1h": "cache_write_1h_mtok",
        "input_audio": "input_audio_mtok",
        "output_audio": "output_audio_mtok",
    }
    raw: dict[str, Any] = {}
    for ours, theirs in sources.items():
        for key in (theirs,) if isinstance(theirs, str) else theirs:
            value = getattr(model_price, key, None)
            if value is not None:
                raw[ours] = value
                break
    thresholds = sorted({t.start for v in raw.values() if isinstance(v, TieredPrices)
                         for t in v.tiers})

    def at(threshold: int | None) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for key, value in raw.items():
            if isinstance(value, TieredPrices):
                price = value.base
                if threshold is not None:
                    for tier in value.tiers:
                        if tier.start <= threshold:
                            price = tier.price
                out[key] = price
            else:
                out[key] = value
        return out

    base_values = at(None)
    base_values.setdefault("input", _ZERO)
    base_values.setdefault("output", _ZERO)
    base = TokenPrices(**base_values)
    tiers = tuple(PriceTier(t, replace(base, **at(t))) for t in thresholds)
    return ModelPricing(base, tiers, SOURCE_GENAI_PRICES, matched=matched, provider=provider_id)

