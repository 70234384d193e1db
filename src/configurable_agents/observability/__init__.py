"""Observability: the LangChain callback handler, the pipeline and its sinks.

Importing this package registers the ``CONFIGURABLE_AGENTS_MLFLOW=true`` configure hook
(inert unless the variable is set).
"""

from configurable_agents.observability.autolog import install as _install_autolog
from configurable_agents.observability.capture.recorder import NODE_METRICS_EVENT
from configurable_agents.observability.handler import MLflowCallbackHandler

_install_autolog()

__all__ = ["NODE_METRICS_EVENT", "MLflowCallbackHandler"]
