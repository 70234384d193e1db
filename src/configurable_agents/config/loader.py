"""Load and validate configuration from YAML files, dicts and the environment.

Errors are turned into one :class:`ConfigError` whose message names the file,
the YAML line where it is known, the dotted field path and the fix, so a user
never sees a raw pydantic or YAML traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from configurable_agents.config.schema import (
    GlobalConfig,
    MLFlowConfig,
    ObservabilityConfig,
    redact_uri,
)

ENV_PREFIX = "CONFIGURABLE_AGENTS_MLFLOW_"
# Env var -> MLFlowConfig field. Values are validated by the model like file values.
ENV_OVERRIDES = {
    f"{ENV_PREFIX}ENABLED": "enabled",
    f"{ENV_PREFIX}TRACKING_URI": "tracking_uri",
    f"{ENV_PREFIX}EXPERIMENT_NAME": "experiment_name",
    f"{ENV_PREFIX}RUN_NAME": "run_name",
    f"{ENV_PREFIX}ASYNC_LOGGING": "async_logging",
    f"{ENV_PREFIX}LOG_ARTIFACTS": "log_artifacts",
    f"{ENV_PREFIX}LOG_TRACES": "log_traces",
    f"{ENV_PREFIX}REDACT_PII": "redact_pii",
    f"{ENV_PREFIX}RETENTION_DAYS": "retention_days",
}


class ConfigError(ValueError):
    """Invalid configuration: the message names where, which field, and the fix."""


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key, for error messages."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    lines = {
        key_node.value: key_node.start_mark.line + 1
        for key_node, _ in node.value
        if isinstance(key_node, yaml.ScalarNode)
    }
    return _LinedDict(mapping, lines)


class _LinedDict(dict):
    """A dict that also knows the YAML line of each key."""

    def __init__(self, data: Mapping[str, Any], lines: dict[str, int]) -> None:
        super().__init__(data)
        self.lines = lines


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML file into a dict (keys remember their line numbers)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    line = None
    node = data
    for part in loc:
        if isinstance(node, _LinedDict) and part in node.lines:
            line = node.lines[part]
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
    return line


def format_validation_error(
    exc: ValidationError, *, source: str, data: Any = None, prefix: tuple[str, ...] = ()
) -> str:
    """One readable line per problem: ``file:line: field.path: message``."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = prefix + tuple(err["loc"])
        path = ".".join(str(p) for p in loc) or "<root>"
        line = _line_of(data, loc) if data is not None else None
        where = f"{source}:{line}" if line else source
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key '{loc[-1]}'; remove it or check its spelling"
        if isinstance(err.get("input"), str) and "tracking_uri" in path:
            msg = msg.replace(err["input"], redact_uri(err["input"]))
        lines.append(f"{where}: {path}: {msg}")
    return "\n".join(lines)


def apply_env_overrides(
    config: GlobalConfig, environ: Mapping[str, str] | None = None
) -> GlobalConfig:
    """Return ``config`` with the MLflow block overridden by ``CONFIGURABLE_AGENTS_MLFLOW_*``."""
    environ = os.environ if environ is None else environ
    overrides = {
        field: environ[var] for var, field in ENV_OVERRIDES.items() if environ.get(var, "") != ""
    }
    if not overrides:
        return config
    base = config.mlflow.model_dump(exclude_unset=True) if config.mlflow else {}
    try:
        mlflow_cfg = MLFlowConfig.model_validate({**base, **overrides})
    except ValidationError as exc:
        names = {f: v for v, f in ENV_OVERRIDES.items()}
        msg = format_validation_error(exc, source="environment")
        for field, var in names.items():
            msg = msg.replace(f": {field}:", f": {var}:")
        raise ConfigError(msg) from None
    return config.model_copy(update={"observability": ObservabilityConfig(mlflow=mlflow_cfg)})


def parse_global_config(
    data: Mapping[str, Any] | None, *, source: str = "<config>", raw: Any = None,
    prefix: tuple[str, ...] = (),
) -> GlobalConfig:
    """Validate a ``config:`` block (a dict) into a :class:`GlobalConfig`."""
    try:
        return GlobalConfig.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, source=source, data=raw, prefix=prefix)
        ) from None


def load_global_config(
    source: str | Path | Mapping[str, Any], *, env: bool = True
) -> GlobalConfig:
    """Load the global ``config:`` block from a workflow YAML file or a dict.

    A file or dict may be a whole workflow (with a top-level ``config:`` key) or
    just the block itself. Environment overrides are applied last when ``env``.
    """
    if isinstance(source, Mapping):
        data: Mapping[str, Any] = source
        name = "<dict>"
    else:
        data = read_yaml(source)
        name = str(source)
    if "config" in data and isinstance(data.get("config"), Mapping | type(None)):
        config = parse_global_config(data.get("config"), source=name, raw=data, prefix=("config",))
    elif "config" in data:
        raise ConfigError(f"{name}: config: expected a mapping, got {type(data['config']).__name__}")
    elif set(data) <= set(GlobalConfig.model_fields):
        config = parse_global_config(data, source=name, raw=data)
    else:
        config = GlobalConfig()
    return apply_env_overrides(config) if env else config
