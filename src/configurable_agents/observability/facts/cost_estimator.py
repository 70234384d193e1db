"""USD cost of LLM calls: user prices > our override table > genai-prices.

- **genai-prices** (bundled snapshot, offline; its network updater is never started)
  is the base: hundreds of models, tiered long-context prices, cache reads/writes,
  audio, and price history (``when``).
- **Our override table** (``data/pricing_overrides.yaml``, USD per 1M tokens) wins
  over it: the seed's Gemini table with official tiers and cache prices.
- **User prices** (config: an inline mapping or a YAML file path, same format) win
  over both: private or fine-tuned models, negotiated discounts.

Model names are normalised before lookup (``models/``, provider prefixes, Bedrock
region/vendor prefixes and ``-v1:0``, ``-001`` / ``-latest`` / ``-preview``, dated
snapshots); within each source the most specific name wins, and a user price for
``gpt-4o`` also prices ``gpt-4o-2024-08-06``. An unknown model is never silently
free: it is ``priced=False`` with source ``"unpriced"``, and logged once per model.

Reasoning tokens are part of ``output`` (LangChain semantics: OpenAI's
``completion_tokens``, ChatAnthropic's ``output_tokens`` and ChatGoogleGenerativeAI's
``output_tokens`` all include them) and are billed at the output price exactly
once; the breakdown shows them separately from the rest of the output.

This module is the price book and the cost arithmetic; the price data and table
loading live in :mod:`.price_table`, name normalisation in :mod:`.model_names` and
the genai-prices bridge in :mod:`.genai_bridge` (their public names are re-exported
here).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from configurable_agents.observability.facts.genai_bridge import genai_lookup, genai_pricing
from configurable_agents.observability.facts.model_names import candidate_names, provider_key
from configurable_agents.observability.facts.price_table import (
    SOURCE_CACHE_HIT,
    SOURCE_UNPRICED,
    SOURCE_USER,
    ModelPricing,
    PriceTier,
    TokenPrices,
    load_override_table,
    load_price_table,
)
from configurable_agents.observability.facts.token_usage import TokenUsage

__all__ = [
    "CostBreakdown",
    "CostEstimate",
    "ModelPricing",
    "PriceBook",
    "PriceTier",
    "TokenPrices",
    "TokenUsage",
    "calculate_cost",
    "candidate_names",
    "default_price_book",
    "estimate_cost",
    "load_price_table",
]

logger = logging.getLogger(__name__)

_MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """USD per part; the parts add up to the amount (reasoning is *part* of the output)."""

    input: float = 0.0  # uncached input (text + audio)
    cache_read: float = 0.0
    cache_write: float = 0.0
    output: float = 0.0  # output other than reasoning
    reasoning: float = 0.0


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """The cost of a :class:`TokenUsage` for one model."""

    amount: float
    priced: bool
    source: str
    model: str
    provider: str | None = None
    matched_model: str | None = None
    breakdown: CostBreakdown = field(default_factory=CostBreakdown)
    tier_above: int | None = None  # the long-context tier threshold applied, if any
    estimated: bool = False  # the token counts were estimated locally



# --- cost arithmetic --------------------------------------------------------------------


def _cost(usage: TokenUsage, pricing: ModelPricing) -> tuple[Decimal, CostBreakdown, int | None]:
    tier = pricing.tier_for(usage.input)
    p = tier.prices if tier else pricing.base
    cache_read = min(usage.cache_read, usage.input)
    cache_write = min(usage.cache_write, usage.input - cache_read)
    write_1h = min(usage.cache_write_1h, cache_write)
    uncached = usage.input - cache_read - cache_write
    audio_in = min(usage.audio_in, uncached) if p.input_audio is not None else 0
    reasoning = min(usage.reasoning, usage.output)
    audio_out = min(usage.audio_out, usage.output - reasoning) if p.output_audio is not None else 0

    write_5m_price = p.cache_write if p.cache_write is not None else p.input
    write_1h_price = p.cache_write_1h if p.cache_write_1h is not None else write_5m_price
    input_cost = (uncached - audio_in) * p.input + audio_in * (p.input_audio or _ZERO)
    read_cost = cache_read * (p.cache_read if p.cache_read is not None else p.input)
    write_cost = (cache_write - write_1h) * write_5m_price + write_1h * write_1h_price
    output_cost = (usage.output - reasoning - audio_out) * p.output + audio_out * (
        p.output_audio or _ZERO
    )
    reasoning_cost = reasoning * p.output
    parts = [c / _MTOK for c in (input_cost, read_cost, write_cost, output_cost, reasoning_cost)]
    breakdown = CostBreakdown(*(float(c) for c in parts))
    return sum(parts, _ZERO), breakdown, tier.above if tier else None


# --- the price book ----------------------------------------------------------------------

_warned_unpriced: set[str] = set()
_warn_lock = threading.Lock()


def _warn_unpriced(model: str) -> None:
    with _warn_lock:
        if model in _warned_unpriced:
            return
        _warned_unpriced.add(model)
    logger.warning(
        "No price known for model %r: its cost is reported as unpriced (0.0, priced=False). "
        "Add it to your prices (observability prices file, USD per 1M tokens).",
        model,
    )


class PriceBook:
    """Resolves and applies prices; thread-safe, resolution cached per (provider, model).

    ``user_prices``: a mapping or YAML file path in the override-file format; these
    win over our override table, which wins over genai-prices.
    """

    def __init__(
        self,
        user_prices: Mapping[str, Any] | str | Path | None = None,
        *,
        use_overrides: bool = True,
        use_genai_prices: bool = True,
    ) -> None:
        self._tables: list[dict[str, ModelPricing]] = []
        user = load_price_table(user_prices, SOURCE_USER)
        if user:
            self._tables.append(user)
        if use_overrides:
            self._tables.append(load_override_table())
        self._use_genai = use_genai_prices
        self._lock = threading.Lock()
        # (provider, model) -> ModelPricing (tables) | (genai ModelInfo, provider id) | None
        self._resolved: dict[tuple[str | None, str], Any] = {}
        self._converted: dict[int, tuple[Any, ModelPricing]] = {}

    # resolution ---------------------------------------------------------------------

    def _lookup(self, model: str, provider: str | None) -> Any:
        candidates = candidate_names(model)
        for table in self._tables:
            for name in candidates:
                if provider and (hit := table.get(f"{provider}/{name}")):
                    return hit
                if hit := table.get(name):
                    return hit
        if self._use_genai:
            found = genai_lookup(candidates, provider)
            if found is not None:
                genai_provider, model_info = found
                return (model_info, genai_provider.id)
        return None

    def _resolve_entry(self, model: str, provider: str | None) -> Any:
        key = (provider, model)
        try:
            return self._resolved[key]
        except KeyError:
            pass
        entry = self._lookup(model, provider)
        with self._lock:
            return self._resolved.setdefault(key, entry)

    def resolve(
        self, model: str, provider: str | None = None, when: datetime | None = None
    ) -> ModelPricing | None:
        """The prices in force for ``model`` (at ``when``, default now), or None if unknown."""
        provider = provider_key(provider)
        entry = self._resolve_entry(model, provider)
        if entry is None or isinstance(entry, ModelPricing):
            return entry
        model_info, provider_id = entry
        model_price = model_info.get_prices(when or datetime.now(tz=UTC))
        cached = self._converted.get(id(model_price))
        if cached is not None and cached[0] is model_price:
            return cached[1]
        pricing = genai_pricing(model_price, model_info.id, provider_id)
        with self._lock:
            self._converted[id(model_price)] = (model_price, pricing)
        return pricing

    # costing ------------------------------------------------------------------------

    def estimate_cost(
        self,
        usage: TokenUsage,
        model: str | None,
        provider: str | None = None,
        when: datetime | None = None,
    ) -> CostEstimate:
        """Cost of ``usage`` on ``model``; an unknown model is unpriced, never a silent $0."""
        model_name = model or ""
        if usage.llm_cache_hit:
            return CostEstimate(0.0, True, SOURCE_CACHE_HIT, model_name, provider,
                                estimated=usage.estimated)
        pricing = self.resolve(model_name, provider, when) if model_name else None
        if pricing is None:
            _warn_unpriced(model_name or "<unknown model>")
            return CostEstimate(0.0, False, SOURCE_UNPRICED, model_name, provider,
                                estimated=usage.estimated)
        amount, breakdown, tier_above = _cost(usage, pricing)
        return CostEstimate(
            amount=float(amount),
            priced=True,
            source=pricing.source,
            model=model_name,
            provider=provider,
            matched_model=pricing.matched,
            breakdown=breakdown,
            tier_above=tier_above,
            estimated=usage.estimated,
        )

    def calculate_cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """The seed API: USD for plain input/output tokens, rounded to 6 decimals."""
        usage = TokenUsage(input=input_tokens, output=output_tokens,
                           total=input_tokens + output_tokens)
        return round(self.estimate_cost(usage, model).amount, 6)


_default_book: PriceBook | None = None
_default_lock = threading.Lock()


def default_price_book() -> PriceBook:
    """A process-wide PriceBook without user prices (override table + genai-prices)."""
    global _default_book
    if _default_book is None:
        with _default_lock:
            if _default_book is None:
                _default_book = PriceBook()
    return _default_book


def calculate_cost(model: str, input_tokens: int, output_tokens: int) -> float:
    """Estimated cost in USD (seed API), rounded to 6 decimals; 0.0 for unknown models."""
    return default_price_book().calculate_cost(model, input_tokens, output_tokens)


def estimate_cost(
    usage: TokenUsage,
    model: str | None,
    provider: str | None = None,
    when: datetime | None = None,
) -> CostEstimate:
    """:meth:`PriceBook.estimate_cost` on the default price book."""
    return default_price_book().estimate_cost(usage, model, provider, when)
