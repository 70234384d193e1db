"""Zero-code enabling: ``CONFIGURABLE_AGENTS_MLFLOW=true`` attaches one handler to every run.

Works like LangSmith's ``LANGSMITH_TRACING``: langchain-core asks every registered
configure hook for a handler each time a run's callbacks are configured. We
register a slot whose ``get()`` returns a single process-wide handler while the
variable is set (config from the ``CONFIGURABLE_AGENTS_MLFLOW_*`` overrides), so
there is one exporter thread per process, not one per invocation. A context
variable would not do: new threads start with an empty context.

``CONFIGURABLE_AGENTS_CONFIG=path.yaml`` (a workflow file or its ``config:`` block) makes
that handler from the file's whole ``observability`` config, as the config runner does:
its pipeline block and every enabled sink (JSONL, OpenTelemetry, Prometheus), MLflow off
included; the ``CONFIGURABLE_AGENTS_MLFLOW_*`` overrides still apply on top.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from langchain_core.tracers.context import register_configure_hook

from configurable_agents.config.loader import apply_env_overrides, load_global_config
from configurable_agents.config.schema import GlobalConfig, MLFlowConfig, ObservabilityConfig

if TYPE_CHECKING:
    from configurable_agents.observability.handler import MLflowCallbackHandler

ENV_FLAG = "CONFIGURABLE_AGENTS_MLFLOW"
CONFIG_ENV = "CONFIGURABLE_AGENTS_CONFIG"
_TRUE = frozenset({"1", "true", "yes", "on"})


class _ProcessHandlerSlot:
    """Quacks like the ContextVar langchain-core expects; only ``get()`` is called."""

    def __init__(self) -> None:
        self._handler: MLflowCallbackHandler | None = None
        self._lock = threading.Lock()

    def get(self, default: object = None) -> MLflowCallbackHandler | None:
        if os.environ.get(ENV_FLAG, "").strip().lower() not in _TRUE:
            return None
        if self._handler is None:
            with self._lock:
                if self._handler is None:
                    self._handler = _handler_from_env()
        return self._handler

    def reset(self) -> None:
        """Close and forget the process handler (tests, or after changing the env)."""
        with self._lock:
            handler, self._handler = self._handler, None
        if handler is not None:
            handler.close()


def _handler_from_env() -> MLflowCallbackHandler:
    from configurable_agents.observability.handler import MLflowCallbackHandler

    path = os.environ.get(CONFIG_ENV, "").strip()
    if path:
        return MLflowCallbackHandler(load_global_config(path))
    base = GlobalConfig(observability=ObservabilityConfig(mlflow=MLFlowConfig(enabled=True)))
    config = apply_env_overrides(base)
    return MLflowCallbackHandler(config)


process_handler_slot = _ProcessHandlerSlot()
_registered = False
_register_lock = threading.Lock()


def install() -> None:
    """Register the configure hook once (idempotent); importing the package does it."""
    global _registered
    with _register_lock:
        if not _registered:
            register_configure_hook(process_handler_slot, inheritable=True)  # type: ignore[arg-type]
            _registered = True
