"""Validated configuration models, named as the seed ADR (ADR-011) names them.

Config is validated at the edge (loader, handler constructor) and trusted inside.
Every model rejects unknown keys so a typo such as ``experiment_nme`` fails loudly
with a suggestion instead of being silently ignored.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# Schemes MLflow's tracking client understands (plus the file store, handled specially).
SUPPORTED_TRACKING_SCHEMES = frozenset(
    {
        "sqlite",
        "postgresql",
        "postgresql+psycopg2",
        "postgresql+psycopg",
        "mysql",
        "mysql+pymysql",
        "mssql",
        "http",
        "https",
        "file",
        "databricks",
    }
)

_RUN_NAME_FIELD = re.compile(r"\{([^{}]*)\}")
_HOST_PORT = re.compile(r"^([^@/\s]+@)?[\w.\-]+:\d+(/.*)?$")
_ARTIFACT_SCHEME_HINT = {
    scheme: f" ({scheme}:// is an artifact store, not a tracking backend: run `mlflow server "
    f"--artifacts-destination {scheme}://...` and set tracking_uri to its http(s) address)"
    for scheme in ("s3", "gs", "wasbs", "abfss", "hdfs")
}


from configurable_agents.config.base import StrictModel  # noqa: E402 - re-exported
from configurable_agents.config.online_eval_config import OnlineEvalConfig  # noqa: E402
from configurable_agents.config.otel_config import OTelConfig  # noqa: E402
from configurable_agents.config.pipeline_config import (  # noqa: E402
    PipelineConfig,
    resolve_pipeline,
    warn_legacy_keys,
)
from configurable_agents.config.prometheus_config import PrometheusConfig  # noqa: E402
from configurable_agents.config.redaction_config import RedactionConfig  # noqa: E402

# Userinfo runs to the LAST '@' (greedy), so a password holding '/', '#', '?' or '@' stays
# hidden; a path with '@' and no userinfo is over-masked, which is the safe direction.
_URI_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)?(?P<userinfo>[^\s]*)@")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|token|access_token|secret|api_key|apikey)=)[^&;#]*",
    re.IGNORECASE,
)


def redact_uri(uri: str) -> str:
    """Display form of a URI with any password or token replaced by ``***``.

    Masks the password of ``user:pass@`` (a lone ``token@`` entirely) and secret-looking
    query parameters (``?password=...``), as libpq and HTTP URIs may carry either.
    """
    text = _SECRET_QUERY.sub(lambda m: f"{m['key']}***", uri)
    match = _URI_USERINFO.match(text)
    if not match:
        return text
    user, sep, _secret = match["userinfo"].partition(":")
    masked = f"{user}:***" if sep else "***"
    return f"{match['scheme'] or ''}{masked}@{text[match.end():]}"


def uri_scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else ""


class MLFlowConfig(StrictModel):
    """The ``observability.mlflow`` block."""

    enabled: bool = False
    tracking_uri: str = DEFAULT_TRACKING_URI
    experiment_name: str = "configurable_agents"
    run_name: str | None = Field(
        default=None,
        description=(
            "Template: {workflow_name}, {workflow_version}, {timestamp}, {date}, {short_id}, "
            "{run_id} and invocation metadata keys "
            "(default: '{workflow_name} v{workflow_version} {short_id}')."
        ),
    )
    log_artifacts: bool = True
    log_system_metrics: bool = False
    log_traces: bool = True
    retention_days: int | None = Field(default=None, ge=1)
    redact_pii: bool = False
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)

    # What the handler needs beyond the ADR.
    async_logging: bool = True
    flush_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    queue_size: int = Field(default=1000, ge=1)
    max_param_chars: int = Field(default=6000, ge=100, le=6000)
    max_artifact_bytes: int = Field(default=5_000_000, ge=1024)
    tags: dict[str, str] = Field(default_factory=dict)
    tag_metadata_keys: list[str] = Field(default_factory=list)
    register_prompts: bool = Field(
        default=False,
        description="Register each node's prompt in MLflow's Prompt Registry (a new version "
        "only when the text changes) and link the versions to the runs that used them.",
    )
    spool_dir: str | None = Field(
        default=None,
        description="Where workflows wait while MLflow is unreachable; default "
        "~/.cache/configurable-agents/spool/<hash of tracking_uri>.",
    )
    spool_max_bytes: int = Field(
        default=1 << 30,
        ge=1,
        description="Spool size cap (default 1 GiB); past it new workflows are dropped "
        "and counted (stats().dropped), with a warning from 80% full.",
    )
    block_on_full: bool = False
    export_workers: int | None = Field(
        default=None, ge=1, le=64,
        description="MLflow writer threads; default by tracking_uri: 4 for a server or "
        "database, 1 for sqlite:// and file:// (one writer at a time anyway).",
    )
    sample_rate: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="Share of ordinary workflows written as runs and traces; the rest are "
        "folded into per-minute rollup runs so cost and token totals stay exact.",
    )
    sample_keep_cost_usd: float | None = Field(
        default=None, ge=0.0,
        description="Tail rule: always keep a workflow costing at least this much (USD).",
    )
    sample_keep_retried: bool = Field(
        default=True, description="Tail rule: always keep a workflow with any retry."
    )
    rollup_bucket_s: int = Field(default=60, ge=1, le=3600)
    quarantine_experiment: str = "configurable_agents_quarantine"
    tenant_fail_closed: bool = False
    pricing: dict[str, Any] | str | None = Field(
        default=None,
        description="Your prices (USD per 1M tokens): a mapping or a YAML file path; "
        "they win over the built-in tables.",
    )

    @field_validator("tracking_uri")
    @classmethod
    def _check_tracking_uri(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("tracking_uri is empty; use e.g. 'sqlite:///mlflow.db'")
        scheme = uri_scheme(value)
        if scheme and scheme not in SUPPORTED_TRACKING_SCHEMES:
            raise ValueError(
                f"unsupported tracking_uri scheme '{scheme}' in {redact_uri(value)!r}; use one of "
                "sqlite:///path.db, postgresql://user:pass@host/db, http(s)://host:port, file:///dir"
                + _ARTIFACT_SCHEME_HINT.get(scheme, "")
            )
        if not scheme and _HOST_PORT.match(value):
            # 'localhost:5000' would silently become a local directory of that name.
            raise ValueError(
                f"tracking_uri {redact_uri(value)!r} has no scheme, so MLflow would treat it as a "
                f"local directory; did you mean {redact_uri('http://' + value)!r}?"
            )
        return value

    @field_validator("experiment_name")
    @classmethod
    def _check_experiment_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError(
                "experiment_name is empty; give a name such as 'configurable_agents'"
            )
        return value

    @field_validator("run_name")
    @classmethod
    def _check_run_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for field in _RUN_NAME_FIELD.findall(value):
            if not field.isidentifier():
                raise ValueError(
                    f"run_name template field '{{{field}}}' is not a plain name; use e.g. "
                    "'{workflow_name}_{timestamp}'"
                )
        return value

    @property
    def resolved_export_workers(self) -> int:
        """``export_workers``, or the default for the URI: one writer for a local file store."""
        if self.export_workers is not None:
            return self.export_workers
        return 1 if uri_scheme(self.tracking_uri) in ("sqlite", "file", "") else 4

    @property
    def display_tracking_uri(self) -> str:
        """The tracking URI safe to print: credentials masked."""
        return redact_uri(self.tracking_uri)


class JsonlConfig(StrictModel):
    """The ``observability.jsonl`` block: one line of facts per workflow in a local file."""

    enabled: bool = False
    path: str = "configurable_agents.jsonl"
    include_artifacts: bool = Field(
        default=False, description="Also write prompts, responses, inputs and outputs."
    )


class ObservabilityConfig(StrictModel):
    """Observability configuration: one block per sink; each has its own ``enabled`` flag.

    Pipeline-wide settings (async_logging, queue_size, block_on_full, flush_timeout_s,
    redact_pii, redaction, pricing, tags, tag_metadata_keys, sampling) live in the
    ``pipeline`` block and apply to every sink, MLflow off included; the same keys in
    the ``mlflow`` block still work with a one-time DeprecationWarning.
    """

    pipeline: PipelineConfig | None = None
    mlflow: MLFlowConfig | None = None
    prometheus: PrometheusConfig | None = None
    jsonl: JsonlConfig | None = None
    otel: OTelConfig | None = None
    online_eval: OnlineEvalConfig | None = None

    @model_validator(mode="after")
    def _warn_moved_keys(self) -> ObservabilityConfig:
        warn_legacy_keys(self.mlflow, self.pipeline)
        return self

    @property
    def settings(self) -> PipelineConfig:
        """The effective pipeline settings (the ``pipeline`` block, then old mlflow keys)."""
        return resolve_pipeline(self.pipeline, self.mlflow)


class LLMConfig(StrictModel):
    provider: Literal["google", "openai", "anthropic", "demo"] = "google"
    model: str = "gemini-2.5-flash"
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)


class ExecutionConfig(StrictModel):
    timeout: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=20)


class GlobalConfig(StrictModel):
    """The workflow file's ``config:`` block."""

    llm: LLMConfig | None = None
    execution: ExecutionConfig | None = None
    observability: ObservabilityConfig | None = None

    @property
    def mlflow(self) -> MLFlowConfig | None:
        return self.observability.mlflow if self.observability else None


def resolved_mlflow(
    config: GlobalConfig | ObservabilityConfig | MLFlowConfig | None,
) -> MLFlowConfig:
    """The MLflow block of any config level; a disabled default when absent."""
    if isinstance(config, MLFlowConfig):
        return config
    if isinstance(config, GlobalConfig):
        return config.mlflow or MLFlowConfig()
    if isinstance(config, ObservabilityConfig):
        return config.mlflow or MLFlowConfig()
    return MLFlowConfig()


def redacted_dump(model: BaseModel) -> dict[str, Any]:
    """A JSON-ready dump of a config with every secret masked (config/masking.py)."""
    from configurable_agents.config.masking import masked

    return masked(model.model_dump(mode="json"), redact_uri)
