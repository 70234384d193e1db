"""MLflow's own CPU/memory/disk monitor, attached to a workflow's parent run while it runs."""

from __future__ import annotations

from typing import Any

from configurable_agents.observability.diagnostics import Diagnostics


class SystemMetrics:
    """One SystemMetricsMonitor per running workflow, keyed by LangChain run id."""

    def __init__(self, diagnostics: Diagnostics) -> None:
        self._diagnostics = diagnostics
        self._monitors: dict[str, Any] = {}

    def start(self, langchain_run_id: str, mlflow_run_id: str, tracking_uri: str | None) -> None:
        try:
            import psutil  # noqa: F401
        except ImportError:
            self._diagnostics.warn_once(
                "system_metrics",
                "log_system_metrics: true needs psutil; install it with "
                "pip install 'configurable-agents[system-metrics]'. System metrics are off.",
            )
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(
            mlflow_run_id,
            sampling_interval=1,
            samples_before_logging=1,
            tracking_uri=tracking_uri,
        )
        monitor.start()
        self._monitors[langchain_run_id] = monitor

    def stop(self, langchain_run_id: str) -> None:
        monitor = self._monitors.pop(langchain_run_id, None)
        if monitor is not None:
            try:
                monitor.finish()
            except Exception as exc:
                self._diagnostics.internal_error("system_metrics", exc)
