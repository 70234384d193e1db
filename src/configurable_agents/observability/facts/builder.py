"""FactsBuilder: a finished WorkflowRecord -> WorkflowFacts, once, for every sink.

Owns what pricing and redaction need (the price book, the redactor). Runs on the
pipeline's thread, never the caller's; the heavy imports (genai-prices, redaction
patterns) happen on first use so that importing the handler stays cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from configurable_agents.config.redaction_config import RedactionConfig
from configurable_agents.observability.capture.records import WorkflowRecord
from configurable_agents.observability.facts.build import FactOptions, build_facts
from configurable_agents.observability.facts.model import WorkflowFacts


class FactsBuilder:
    """Prices, redacts and bounds finished workflows."""

    def __init__(
        self,
        *,
        redact_pii: bool = False,
        redaction: RedactionConfig | None = None,
        pricing: Any = None,
        redactor: Any = None,
    ) -> None:
        self._redact_pii = redact_pii
        self._redaction = redaction
        self._pricing_arg = pricing
        self._redactor_arg = redactor
        self._price_book: Any = None
        self._redact: Callable[[str], str] | None = None
        self._lock = threading.Lock()

    @property
    def redact(self) -> Callable[[str], str] | None:
        """The redactor every string that leaves goes through (None: redaction off)."""
        self._ensure_ready()
        return self._redact

    def _ensure_ready(self) -> Any:
        if self._price_book is not None:
            return self._price_book
        with self._lock:
            if self._price_book is None:
                from configurable_agents.observability.facts.cost_estimator import PriceBook

                pricing = self._pricing_arg
                if self._redactor_arg is not None:
                    self._redact = getattr(self._redactor_arg, "redact", self._redactor_arg)
                elif self._redact_pii:
                    from configurable_agents.observability.privacy.redaction import Redactor

                    self._redact = Redactor(self._redaction or RedactionConfig()).redact
                self._price_book = (
                    pricing if hasattr(pricing, "estimate_cost") else PriceBook(pricing)
                )
            return self._price_book

    def build(self, workflow: WorkflowRecord, options: FactOptions) -> WorkflowFacts:
        """The workflow's facts, redacted with this builder's redactor."""
        price_book = self._ensure_ready()
        options.redact = self._redact
        return build_facts(workflow, options, price_book)

    def prepare(self, options: FactOptions) -> FactOptions:
        """Options for use before any facts exist (a run created at workflow start)."""
        self._ensure_ready()
        options.redact = self._redact
        return options
