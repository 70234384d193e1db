"""FactsBuilder: a finished WorkflowRecord -> WorkflowFacts, once, for every sink.

Owns what pricing and redaction need (the price book, the redactor) and the
tenant decision (which MLflow experiment; or not logged at all when the tenant
is invalid and the config fails closed). Runs on the pipeline's thread, never
the caller's; the heavy imports (genai-prices, redaction patterns) happen on
first use so that importing the handler stays cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from configurable_agents.config.schema import MLFlowConfig
from configurable_agents.observability.capture.records import WorkflowRecord
from configurable_agents.observability.diagnostics import Diagnostics
from configurable_agents.observability.facts.assemble import AssembleOptions, Assembler
from configurable_agents.observability.facts.workflow_facts import WorkflowFacts
from configurable_agents.observability.privacy.tenancy import (
    TenantError,
    resolve_experiment_name,
)


class FactsBuilder:
    """Prices, redacts and bounds finished workflows; resolves their experiment."""

    def __init__(
        self,
        settings: MLFlowConfig,
        diagnostics: Diagnostics,
        pricing: Any = None,
        redactor: Any = None,
    ) -> None:
        self.settings = settings
        self._diagnostics = diagnostics
        self._pricing_arg = pricing
        self._redactor_arg = redactor
        self._assembler: Assembler | None = None
        self._redact: Callable[[str], str] | None = None
        self._lock = threading.Lock()

    @property
    def redact(self) -> Callable[[str], str] | None:
        self._ensure_ready()
        return self._redact

    def _ensure_ready(self) -> Assembler:
        if self._assembler is not None:
            return self._assembler
        with self._lock:
            if self._assembler is None:
                from configurable_agents.observability.facts.cost_estimator import PriceBook

                pricing = self._pricing_arg
                price_book = pricing if hasattr(pricing, "estimate_cost") else PriceBook(pricing)
                if self._redactor_arg is not None:
                    self._redact = getattr(self._redactor_arg, "redact", self._redactor_arg)
                elif self.settings.redact_pii:
                    from configurable_agents.observability.privacy.redaction import Redactor

                    self._redact = Redactor(self.settings.redaction).redact
                self._assembler = Assembler(price_book)
            return self._assembler

    def experiment_for(self, workflow: WorkflowRecord) -> str | None:
        """Resolve a ``{tenant_id}``-style experiment template; None means do not log."""
        template = self.settings.experiment_name
        try:
            return resolve_experiment_name(template, workflow.metadata)
        except TenantError as exc:
            if self.settings.tenant_fail_closed:
                self._diagnostics.warn_once(
                    f"tenant:{exc}", "not logging workflow: %s (fail closed)", exc
                )
                return None
            self._diagnostics.warn_once(
                f"tenant:{exc}", "%s; logging to quarantine experiment %r",
                exc, self.settings.quarantine_experiment,
            )
            return self.settings.quarantine_experiment

    def build(self, workflow: WorkflowRecord, options: AssembleOptions) -> WorkflowFacts | None:
        """The workflow's facts, or None when its tenant is refused (fail closed)."""
        experiment = self.experiment_for(workflow)
        if experiment is None:
            return None
        assembler = self._ensure_ready()
        if self._redact is not None:
            options.redact = self._redact
        plan = assembler.plan(workflow, options)
        return WorkflowFacts(record=workflow, plan=plan, options=options, experiment=experiment)

    def start_options(self, options: AssembleOptions) -> AssembleOptions:
        """Options for a run created at workflow start (tags redacted like the final run's)."""
        self._ensure_ready()
        if self._redact is not None:
            options.redact = self._redact
        return options
