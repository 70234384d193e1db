"""MLflowCallbackHandler: the public handler, the capture layer wired to the sinks.

:class:`CallbackRecorder` (``capture/``) builds the run tree on the caller's
thread; this class reads the config, builds the enabled sinks and the pipeline
that feeds them, and connects the recorder's hooks to it. It keeps the name users
know even though MLflow is now one sink of several: with ``mlflow.enabled: false``
and another sink on (``jsonl``, ``otel``, ``prometheus``) it records all the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from configurable_agents.config.loader import (
    ConfigError,
    format_validation_error,
    load_global_config,
)
from configurable_agents.config.schema import (
    GlobalConfig,
    MLFlowConfig,
    ObservabilityConfig,
    PipelineConfig,
)
from configurable_agents.observability.capture.recorder import CallbackRecorder
from configurable_agents.observability.capture.records import WorkflowRecord
from configurable_agents.observability.diagnostics import Diagnostics
from configurable_agents.observability.facts.build import FactOptions
from configurable_agents.observability.facts.builder import FactsBuilder
from configurable_agents.observability.pipeline import Pipeline
from configurable_agents.observability.privacy.tenancy import resolve_experiment_name
from configurable_agents.observability.sinks.base import Sink, SinkStats
from configurable_agents.observability.sinks.registry import build_sinks


@dataclass(slots=True)
class ExporterStats:
    """``handler.stats()``: the MLflow sink's counters (as before sinks) plus every sink's."""

    queued: int
    exported: int
    spooled: int
    replayed: int
    failed: int
    dropped: int
    internal_errors: int
    active_runs: int
    pending_workflows: int
    backend_up: bool
    sinks: dict[str, SinkStats] = field(default_factory=dict)
    rejected: int = 0  # workflows MLflow refused or unreadable spool files, set aside

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class MLflowCallbackHandler(CallbackRecorder):
    """Log every LangGraph / LangChain invocation to the enabled sinks (MLflow first).

    Attach it with ``config={"callbacks": [handler]}``. One instance is safe to share
    across threads and asyncio tasks; call :meth:`flush` before reading MLflow and
    :meth:`close` when done (an atexit hook also flushes with a bounded wait).
    """

    def __init__(
        self,
        config: MLFlowConfig | GlobalConfig | ObservabilityConfig | Mapping[str, Any] | None = None,
        *,
        workflow_name: str | None = None,
        workflow_version: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        pricing: Any = None,
        redactor: Any = None,
        sinks: Sequence[Sink] = (),
    ) -> None:
        if isinstance(config, Mapping):
            config = _config_from_mapping(config)
        self.observability = _observability(config)
        self.config: MLFlowConfig = self.observability.mlflow or MLFlowConfig()
        #: The pipeline block (with the old mlflow-block keys carried over): every sink's.
        self.settings: PipelineConfig = self.observability.settings
        self.params = dict(params or {})
        self.static_tags = {**self.settings.tags, **(tags or {})}
        self._diagnostics = Diagnostics(scrub=self._scrub)
        self._fact_options: FactOptions | None = None
        all_sinks = [*build_sinks(self.observability, self.settings), *sinks]
        builder = FactsBuilder(
            redact_pii=self.settings.redact_pii,
            redaction=self.settings.redaction,
            pricing=pricing if pricing is not None else self.settings.pricing,
            redactor=redactor,
        )
        self._facts_builder = builder
        self._pipeline = Pipeline(self.settings, all_sinks, builder, self._diagnostics)
        super().__init__(
            enabled=bool(all_sinks),
            workflow_name=workflow_name,
            workflow_version=workflow_version,
        )

    # ---- construction helpers -------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        source: str | Path | GlobalConfig | ObservabilityConfig | MLFlowConfig | Mapping[str, Any],
        **kwargs: Any,
    ) -> MLflowCallbackHandler:
        """Build from a workflow YAML path, a config model, or a dict (env overrides applied)."""
        if isinstance(source, str | Path | Mapping):
            config: Any = load_global_config(source)
        else:
            config = source
        if isinstance(source, str | Path) and "workflow_name" not in kwargs:
            flow = _flow_block(source)
            kwargs.setdefault("workflow_name", flow.get("name"))
            if flow.get("version") is not None:
                kwargs.setdefault("workflow_version", str(flow["version"]))
        return cls(config, **kwargs)

    # ---- recorder hooks (caller thread) -------------------------------------------------------

    def _options(self) -> FactOptions:
        """Built once: it refers to ``params`` and ``static_tags``, so later edits still count."""
        if self._fact_options is not None:
            return self._fact_options
        self._fact_options = FactOptions(
            workflow_params=self.params,
            static_tags=self.static_tags,
            tag_metadata_keys=tuple(self.settings.tag_metadata_keys),
            run_name_template=self.config.run_name,
        )
        return self._fact_options

    def _workflow_started(self, workflow: WorkflowRecord) -> None:
        self.workflow_started(workflow)

    def _workflow_finished(self, workflow: WorkflowRecord) -> None:
        self.workflow_finished(workflow)

    def _internal_error(self, kind: str, exc: BaseException) -> None:
        self.internal_error(kind, exc)

    # ---- the public listener seam (producers other than LangChain: the DSPy recorder) ----

    def workflow_started(self, workflow: WorkflowRecord) -> None:
        """A producer's root invocation began (caller thread: O(1), no I/O)."""
        self._pipeline.workflow_started(workflow, self._options())

    def workflow_finished(self, workflow: WorkflowRecord) -> None:
        """A producer's root invocation ended; the record is complete: facts, then sinks."""
        self._pipeline.workflow_finished(workflow, self._options())

    def internal_error(self, kind: str, exc: BaseException) -> None:
        """Count a failure of ours (and log it once per kind); never raises."""
        self._diagnostics.internal_error(kind, exc)

    def _scrub(self, text: str) -> str:
        """Never let the tracking URI's credentials reach a log line."""
        uri = self.config.tracking_uri
        return text.replace(uri, self.config.display_tracking_uri) if uri in text else text

    # ---- public API ---------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` as this handler's sinks would write it (redacted when ``redact_pii`` is
        on or a redactor was given). For what is written beside the handler's runs, such as
        an evaluation's tables and assessments, so nothing bypasses the same redactor."""
        redact = self._facts_builder.redact
        return redact(text) if redact is not None else text

    def experiment_name_for(self, metadata: Mapping[str, Any]) -> str:
        """The experiment an invocation with ``metadata`` is logged to (a ``{tenant_id}``
        template resolved); ValueError (TenantError) for a missing or unsafe value."""
        return resolve_experiment_name(self.config.experiment_name, metadata)

    @property
    def enabled(self) -> bool:
        """True when at least one sink is enabled."""
        return self._enabled

    @property
    def sinks(self) -> list[Sink]:
        return list(self._pipeline.sinks)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every workflow finished so far is written by every sink.

        False on timeout, or while some workflows are only in the MLflow spool (they are
        safe on disk and replay when MLflow is back, or with ``configurable-agents sync``).
        """
        return self._pipeline.flush(self.settings.flush_timeout_s if timeout is None else timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop the background threads; what is still queued is spooled. Idempotent."""
        return self._pipeline.close(self.settings.flush_timeout_s if timeout is None else timeout)

    def stats(self) -> ExporterStats:
        """Counters: queued, exported, spooled, failed, dropped, internal errors, per sink."""
        sinks = self._pipeline.sink_stats()
        mlflow = sinks.get("mlflow", SinkStats())
        own = self._pipeline.counts()
        return ExporterStats(
            queued=own["queued"],
            exported=mlflow.exported,
            spooled=mlflow.spooled,
            replayed=mlflow.replayed,
            failed=own["failed"] + mlflow.failed,
            dropped=own["dropped"] + mlflow.dropped,
            internal_errors=self._diagnostics.internal_errors,
            active_runs=self.active_runs,
            pending_workflows=self._pipeline.pending,
            backend_up=mlflow.up,
            sinks=sinks,
            rejected=mlflow.rejected,
        )

    @property
    def last_run_id(self) -> str | None:
        """MLflow run id of the most recently exported parent run."""
        sink = self._pipeline.sink("mlflow")
        return getattr(sink, "last_run_id", None)

    def run_id_for(self, langchain_run_id: UUID | str) -> str | None:
        """MLflow parent run id for a LangChain root run id (after flush)."""
        sink = self._pipeline.sink("mlflow")
        return sink.run_id_for(str(langchain_run_id)) if sink is not None else None  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        names = ",".join(s.name for s in self._pipeline.sinks) or "none"
        return (
            f"MLflowCallbackHandler(enabled={self.enabled}, sinks={names}, "
            f"tracking_uri={self.config.display_tracking_uri!r}, "
            f"experiment_name={self.config.experiment_name!r})"
        )


def _observability(
    config: MLFlowConfig | GlobalConfig | ObservabilityConfig | None,
) -> ObservabilityConfig:
    if isinstance(config, ObservabilityConfig):
        return config
    if isinstance(config, MLFlowConfig):
        # The Python API may pass pipeline keys in MLFlowConfig: honoured, not warned about.
        return ObservabilityConfig.model_construct(mlflow=config)
    if isinstance(config, GlobalConfig) and config.observability is not None:
        return config.observability
    return ObservabilityConfig()


def _config_from_mapping(data: Mapping[str, Any]) -> MLFlowConfig | GlobalConfig:
    """A dict is either the MLflow block itself or a workflow / ``config:`` block."""
    if data and set(data) <= set(MLFlowConfig.model_fields):
        try:
            return MLFlowConfig.model_validate(dict(data))
        except ValidationError as exc:
            raise ConfigError(
                format_validation_error(exc, source="<dict>", prefix=("mlflow",))
            ) from None
    return load_global_config(data, env=False)


def _flow_block(path: str | Path) -> dict[str, Any]:
    from configurable_agents.config.loader import read_yaml

    flow = read_yaml(path).get("flow")
    return flow if isinstance(flow, dict) else {}
