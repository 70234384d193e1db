"""MLflowDSPyCallback: log DSPy programs, evaluations and optimizers through the same pipeline.

``dspy.configure(callbacks=[MLflowDSPyCallback(config)])`` (or ``callbacks=[...]`` on
one module or LM) turns every top-level program call into one MLflow parent run with
a nested run per sub-module, tokens from the provider's reported usage (cached and
reasoning tokens included), cost from our price book, prompts and responses as
artifacts, and the same trace, OpenTelemetry and Prometheus output as a LangGraph
run: the callback feeds an :class:`MLflowCallbackHandler`'s pipeline, so the config
block, sinks and reports are the same. Pass ``handler=`` to share the handler your
LangGraph app uses: DSPy calls made inside one of its nodes then land in that run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from configurable_agents.observability.capture.dspy_recorder import (
    KIND_OPTIMIZATION,
    DspyRecorder,
)
from configurable_agents.observability.handler import ExporterStats, MLflowCallbackHandler

__all__ = ["KIND_OPTIMIZATION", "MLflowDSPyCallback"]  # kind: track_optimization's run


class MLflowDSPyCallback(DspyRecorder):
    """A DSPy ``BaseCallback`` that records into an :class:`MLflowCallbackHandler`.

    ``config`` and ``handler_kwargs`` build a new handler (as ``MLflowCallbackHandler``
    takes them); ``handler`` reuses one instead. ``workflow_name`` names the parent
    runs (default: the program's class name); ``metadata`` becomes their attribution
    tags (``user_id``, ``team``, ...) exactly as LangChain invocation metadata does.
    """

    def __init__(
        self,
        config: Any = None,
        *,
        handler: MLflowCallbackHandler | None = None,
        workflow_name: str | None = None,
        workflow_version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **handler_kwargs: Any,
    ) -> None:
        if handler is not None and (config is not None or handler_kwargs):
            raise ValueError("pass either handler= or a config for a new handler, not both")
        self.handler = handler if handler is not None else MLflowCallbackHandler(
            config, **handler_kwargs
        )
        super().__init__(
            self.handler,
            workflow_name=workflow_name,
            workflow_version=workflow_version,
            metadata=metadata,
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every finished program call is written by every sink."""
        return self.handler.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop the handler's background threads. Idempotent."""
        return self.handler.close(timeout)

    def stats(self) -> ExporterStats:
        return self.handler.stats()

    @property
    def last_run_id(self) -> str | None:
        """MLflow run id of the most recently exported parent run."""
        return self.handler.last_run_id

    def run_id_for(self, workflow_run_id: Any) -> str | None:
        """MLflow parent run id for a recorded workflow's id (after :meth:`flush`)."""
        return self.handler.run_id_for(workflow_run_id)

    def __repr__(self) -> str:
        return f"MLflowDSPyCallback({self.handler!r})"
