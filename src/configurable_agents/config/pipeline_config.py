"""The ``observability.pipeline`` block: settings of the whole pipeline, for every sink.

How workflows are queued and flushed, what is redacted and priced, which tags every
sink sees and which workflows are sampled apply whichever sinks are on, MLflow off
included. They started in the ``mlflow`` block; there they still work, with a one-time
``DeprecationWarning``, unless the ``pipeline`` block sets them (it wins).
docs/guide/pipeline.md documents each key.
"""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import Field

from configurable_agents.config.base import StrictModel
from configurable_agents.config.redaction_config import RedactionConfig


class PipelineConfig(StrictModel):
    """Queueing, privacy, pricing, tags and sampling: one block, read by every sink."""

    async_logging: bool = True
    queue_size: int = Field(default=1000, ge=1)
    block_on_full: bool = False
    flush_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    redact_pii: bool = False
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)
    pricing: dict[str, Any] | str | None = Field(
        default=None,
        description="Your prices (USD per 1M tokens): a mapping or a YAML file path; "
        "they win over the built-in tables.",
    )
    tags: dict[str, str] = Field(default_factory=dict)
    tag_metadata_keys: list[str] = Field(default_factory=list)
    sample_rate: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="Share of ordinary workflows written in full; the rest are counted "
        "(MLflow folds them into rollup runs, so totals stay exact).",
    )
    sample_keep_cost_usd: float | None = Field(
        default=None, ge=0.0,
        description="Tail rule: always keep a workflow whose computed cost is at least this.",
    )
    sample_keep_retried: bool = Field(
        default=True, description="Tail rule: always keep a workflow with any retry."
    )


#: The keys that moved from ``observability.mlflow`` to ``observability.pipeline``.
PIPELINE_KEYS: tuple[str, ...] = tuple(PipelineConfig.model_fields)

_warned = False


def resolve_pipeline(pipeline: PipelineConfig | None, mlflow: Any) -> PipelineConfig:
    """The effective pipeline settings: the ``pipeline`` block, else the old ``mlflow`` keys.

    A key set in the ``pipeline`` block wins; a key set only in the ``mlflow`` block is
    carried over (the old place; warned about once per process).
    """
    own = pipeline.model_dump(exclude_unset=True) if pipeline is not None else {}
    legacy: dict[str, Any] = {}
    if mlflow is not None:
        legacy = {k: getattr(mlflow, k) for k in PIPELINE_KEYS
                  if k in mlflow.model_fields_set and k not in own}
    if not legacy:
        return pipeline if pipeline is not None else PipelineConfig()
    return PipelineConfig.model_validate({**legacy, **own})


def warn_legacy_keys(mlflow: Any, pipeline: PipelineConfig | None) -> None:
    """One ``DeprecationWarning`` per process when the mlflow block holds pipeline keys."""
    global _warned
    if _warned or mlflow is None:
        return
    moved = sorted(k for k in PIPELINE_KEYS if k in mlflow.model_fields_set)
    if moved:
        _warned = True
        warnings.warn(
            f"observability.mlflow.{{{', '.join(moved)}}} apply to every sink and moved to "
            "observability.pipeline; the mlflow block still works for now"
            + (" (the pipeline block wins where both set a key)" if pipeline else ""),
            DeprecationWarning,
            stacklevel=3,
        )
