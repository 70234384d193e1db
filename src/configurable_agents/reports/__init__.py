"""The read side: cost reports, run comparison and retention, read back from MLflow.

Never imports the write side (``observability.capture`` / ``observability.sinks``); names of
params, metrics and tags come from :mod:`configurable_agents.names`. The public API is
re-exported here (``reporting`` for reports, ``retention`` for cleanup).
"""

from __future__ import annotations

from configurable_agents.reports.reporting import (
    Comparison,
    CostReport,
    Delta,
    GroupStats,
    NodeComparison,
    ReportError,
    ReportOptionError,
    ReportScope,
    compare_runs,
    cost_report,
    parse_time_bound,
    plot_cost_per_day,
)
from configurable_agents.reports.retention import (
    CleanupPlan,
    CleanupSummary,
    RetentionError,
    StaleSummary,
    apply_cleanup,
    cleanup_runs,
    close_stale_runs,
    plan_cleanup,
)

__all__ = [
    "CleanupPlan",
    "CleanupSummary",
    "Comparison",
    "CostReport",
    "Delta",
    "GroupStats",
    "NodeComparison",
    "ReportError",
    "ReportOptionError",
    "ReportScope",
    "RetentionError",
    "StaleSummary",
    "apply_cleanup",
    "cleanup_runs",
    "close_stale_runs",
    "compare_runs",
    "cost_report",
    "parse_time_bound",
    "plan_cleanup",
    "plot_cost_per_day",
]
