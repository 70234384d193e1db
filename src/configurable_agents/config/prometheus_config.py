"""Configuration of the Prometheus sink (``observability.prometheus``).

Lives in ``config`` so ``ObservabilityConfig`` can embed it without importing
prometheus-client. Label names are checked here, once, so the sink can trust them.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from configurable_agents.config.base import StrictModel

# Labels the sink sets itself; an attribution label may not take one of these names.
RESERVED_LABELS = frozenset(
    {
        "workflow",
        "workflow_version",
        "node",
        "status",
        "sink",
        "label",
        "le",
        "quantile",
        "instance",
        "job",
        "error_type",
    }
)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]{0,63}")


class PrometheusConfig(StrictModel):
    """Where metrics are served and how many label values they may take.

    ``port`` set: the sink serves ``/metrics`` itself on ``addr:port`` (a daemon thread).
    ``port`` unset: mount ``sinks.prometheus.metrics_asgi_app()``
    or ``metrics_wsgi_app`` in your own server. Multi-process mode (gunicorn or uvicorn
    workers) is on when ``PROMETHEUS_MULTIPROC_DIR`` is set, as prometheus-client defines it.
    """

    enabled: bool = False
    port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Serve /metrics on this port (0: any free port); unset: mount the app.",
    )
    addr: str = Field(default="127.0.0.1", description="Listen address of the standalone server.")
    attribution_labels: list[str] = Field(
        default_factory=list,
        description="Invocation metadata keys (e.g. team, tenant_id) that become labels of "
        "the run and cost counters; nothing else from metadata ever becomes a label.",
    )
    max_label_values: int = Field(
        default=50,
        ge=1,
        le=10_000,
        description="Distinct values kept per label; later values are folded into 'other' "
        "(known workflow names are never folded).",
    )
    max_series: int = Field(
        default=5_000,
        ge=100,
        le=1_000_000,
        description="Bound on the series the sink exposes, all families together (each "
        "histogram bucket is a series); past it new label sets fold their free-form labels "
        "into 'other', keeping known workflow names, status and token type.",
    )
    workflows: list[str] = Field(
        default_factory=list,
        description="Known workflow names: always their own label value, never folded and "
        "never starved by unknown names (the handler's own workflow_name is always known).",
    )
    metadata_workflow_names: bool = Field(
        default=False,
        description="Take the workflow and workflow_version labels from invocation "
        "metadata. Off: they come from the handler's configuration (or the graph's name), "
        "so a caller cannot mint label values.",
    )
    queue_size: int = Field(default=10_000, ge=1)

    @field_validator("addr")
    @classmethod
    def _check_addr(cls, value: str) -> str:
        value = value.strip()
        if not value or any(ch.isspace() or ch in "/@" for ch in value):
            raise ValueError(f"addr {value!r} is not a host address; use e.g. '0.0.0.0'")
        return value

    @field_validator("attribution_labels")
    @classmethod
    def _check_labels(cls, values: list[str]) -> list[str]:
        for name in values:
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(
                    f"attribution label {name!r} is not a Prometheus label name "
                    "(letters, digits and '_', not starting with a digit or '__')"
                )
            if name in RESERVED_LABELS or name.startswith("gen_ai_"):
                raise ValueError(f"attribution label {name!r} clashes with a label the sink sets")
        if len(set(values)) != len(values):
            raise ValueError("attribution_labels lists a name twice")
        return values
