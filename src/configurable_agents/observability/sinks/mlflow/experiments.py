"""Which MLflow experiment a workflow goes to: the tenant template, quarantine, or none."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from configurable_agents.config.schema import MLFlowConfig

if TYPE_CHECKING:
    from configurable_agents.observability.facts.model import WorkflowFacts


def experiment_for(config: MLFlowConfig, facts: WorkflowFacts, diagnostics: Any) -> str | None:
    """Resolve a ``{tenant_id}``-style experiment template; None means do not log.

    With ``diagnostics`` None (a run created at workflow start) a refused tenant is left
    to the finished workflow to decide, silently.
    """
    from configurable_agents.observability.privacy.tenancy import (
        TenantError,
        resolve_experiment_name,
    )

    try:
        return resolve_experiment_name(config.experiment_name, facts.metadata_text)
    except TenantError as exc:
        if diagnostics is None:
            return None
        if config.tenant_fail_closed:
            diagnostics.warn_once(f"tenant:{exc}", "not logging workflow: %s (fail closed)", exc)
            return None
        diagnostics.warn_once(
            f"tenant:{exc}", "%s; logging to quarantine experiment %r",
            exc, config.quarantine_experiment,
        )
        return config.quarantine_experiment
