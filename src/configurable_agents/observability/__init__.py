"""Observability: the LangChain callback handler and what it needs (pricing, export, reports).

Importing this package registers the ``CONFIGURABLE_AGENTS_MLFLOW=true`` configure hook
(inert unless the variable is set).
"""

from configurable_agents.observability.autolog import install as _install_autolog
from configurable_agents.observability.capture.handler import (
    NODE_METRICS_EVENT,
    MLflowCallbackHandler,
)

_install_autolog()

__all__ = ["NODE_METRICS_EVENT", "MLflowCallbackHandler"]
