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
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from configurable_agents.config.loader import ConfigError
from configurable_agents.observability.facts.usage import TokenUsage

__all__ = [
    "CostBreakdown",
    "CostEstimate",
    "ModelPricing",
    "PriceBook",
    "PriceTier",
    "TokenPrices",
    "calculate_cost",
    "candidate_names",
    "default_price_book",
    "estimate_cost",
    "load_price_table",
]

logger = logging.getLogger(__name__)

SOURCE_USER = "user"
SOURCE_OVERRIDE = "override"
SOURCE_GENAI_PRICES = "genai-prices"
SOURCE_UNPRICED = "unpriced"
SOURCE_CACHE_HIT = "cache-hit"

_MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)

# --- price data ------------------------------------------------------------------------

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


def _override_table() -> dict[str, ModelPricing]:
    text = (resources.files("configurable_agents") / "data" / "pricing_overrides.yaml").read_text(
        encoding="utf-8"
    )
    return load_price_table(yaml.safe_load(text), SOURCE_OVERRIDE)


# --- name normalisation ----------------------------------------------------------------

_BEDROCK_REGION = re.compile(r"^(?:us|eu|apac|ap|jp|au|ca|us-gov|global)\.")
_BEDROCK_VENDOR = re.compile(
    r"^(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|writer|google)\."
)
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")
_SUFFIXES = (
    re.compile(r"@\d{8}$"),  # Vertex AI Anthropic: claude-sonnet-4@20250514
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # gpt-4o-2024-08-06
    re.compile(r"-20\d{6}$"),  # claude-sonnet-4-20250514
    re.compile(r"-\d{3}$"),  # gemini-2.5-flash-001
    re.compile(r"-latest$"),
    re.compile(r"-(?:preview|exp)(?:-[\w.]+)*$"),  # gemini-3-pro-preview, ...-preview-05-20
)


def candidate_names(model: str) -> list[str]:
    """Lookup names for ``model``, most specific first, all lowercase.

    >>> candidate_names("us.anthropic.claude-sonnet-4-20250514-v1:0")[-1]
    'claude-sonnet-4'
    """
    name = model.strip().lower()
    out = [name]
    name = name.rsplit("/", 1)[-1]  # models/, vertex_ai/, openai/, publishers/.../models/
    name = name.removeprefix("ft:").split(":", 1)[0] if name.startswith("ft:") else name
    out.append(name)
    name = _BEDROCK_VERSION.sub("", _BEDROCK_VENDOR.sub("", _BEDROCK_REGION.sub("", name)))
    out.append(name)
    changed = True
    while changed:
        changed = False
        for pattern in _SUFFIXES:
            stripped = pattern.sub("", name)
            if stripped != name and stripped:
                name, changed = stripped, True
                out.append(name)
    return list(dict.fromkeys(n for n in out if n))


# Our/LangChain provider names -> genai-prices provider ids.
_PROVIDER_IDS = {
    "openai": "openai",
    "azure": "azure",
    "azure_openai": "azure",
    "anthropic": "anthropic",
    "google": "google",
    "google_genai": "google",
    "google-genai": "google",
    "google_vertexai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "gemini": "google",
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "amazon_bedrock": "aws",
    "aws": "aws",
    "groq": "groq",
    "mistral": "mistral",
    "mistralai": "mistral",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "cohere": "cohere",
    "fireworks": "fireworks",
    "together": "together",
    "openrouter": "openrouter",
    "perplexity": "perplexity",
}


def _provider_key(provider: str | None) -> str | None:
    return provider.strip().lower() if provider else None


# --- genai-prices bridge --------------------------------------------------------------


def _genai_lookup(candidates: list[str], provider: str | None) -> tuple[Any, Any] | None:
    """(genai Provider, ModelInfo) for the first candidate genai-prices knows."""
    from genai_prices import data_snapshot  # bundled data; never starts UpdatePrices

    snapshot = data_snapshot.get_snapshot()
    provider_id = _PROVIDER_IDS.get(provider or "")
    attempts = [provider_id, None] if provider_id else [None]
    for pid in attempts:
        for name in candidates:
            try:
                return snapshot.find_provider_model(name, None, pid, None)
            except LookupError:
                continue
    return None


def _genai_pricing(model_price: Any, matched: str, provider_id: str) -> ModelPricing:
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
            self._tables.append(_override_table())
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
            found = _genai_lookup(candidates, provider)
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
        provider = _provider_key(provider)
        entry = self._resolve_entry(model, provider)
        if entry is None or isinstance(entry, ModelPricing):
            return entry
        model_info, provider_id = entry
        model_price = model_info.get_prices(when or datetime.now(tz=UTC))
        cached = self._converted.get(id(model_price))
        if cached is not None and cached[0] is model_price:
            return cached[1]
        pricing = _genai_pricing(model_price, model_info.id, provider_id)
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
