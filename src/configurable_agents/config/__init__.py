"""Configuration: pydantic models (``schema``) and loading with env overrides (``loader``)."""

from configurable_agents.config.loader import (
    ConfigError,
    apply_env_overrides,
    load_global_config,
    read_yaml,
)
from configurable_agents.config.schema import (
    DEFAULT_TRACKING_URI,
    ExecutionConfig,
    GlobalConfig,
    LLMConfig,
    MLFlowConfig,
    ObservabilityConfig,
    redact_uri,
    redacted_dump,
)

__all__ = [
    "DEFAULT_TRACKING_URI",
    "ConfigError",
    "ExecutionConfig",
    "GlobalConfig",
    "LLMConfig",
    "MLFlowConfig",
    "ObservabilityConfig",
    "apply_env_overrides",
    "load_global_config",
    "read_yaml",
    "redact_uri",
    "redacted_dump",
]
