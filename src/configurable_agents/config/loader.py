"""Load and validate configuration from YAML files, dicts and the environment.

Errors are turned into one :class:`ConfigError` whose message names the file,
the YAML line where it is known, the dotted field path and the fix, so a user
never sees a raw pydantic or YAML traceback.
"""

from __future__ import annotations

import difflib
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
    f"{ENV_PREFIX}FLUSH_TIMEOUT_S": "flush_timeout_s",
    f"{ENV_PREFIX}SPOOL_DIR": "spool_dir",
    f"{ENV_PREFIX}LOG_SYSTEM_METRICS": "log_system_metrics",
}


class ConfigError(ValueError):
    """Invalid configuration: the message names where, which field, and the fix."""


class ConfigInputError(ConfigError):
    """The input is refused before validation: not UTF-8 text, or over a safety limit.

    The limits (YAML nesting depth, YAML nodes after alias expansion, workflow size)
    keep a hostile or broken file from exhausting the stack, memory or CPU. The CLI
    exits 2 for these (bad input), 1 for a file that was read but is invalid.
    """


MAX_YAML_DEPTH = 64
"""Deepest nesting of YAML mappings and sequences in one file."""
MAX_YAML_NODES = 100_000
"""Most YAML nodes one file may hold once every alias is expanded (billion-laughs guard)."""


class _YamlLimitError(yaml.composer.ComposerError):
    """A YAML file over MAX_YAML_DEPTH or MAX_YAML_NODES (raised while composing)."""


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key, for error messages.

    It also bounds the document: nesting is counted while composing (PyYAML composes
    recursively, so depth is what could exhaust the stack) and the node count after
    alias expansion is checked before anything is constructed.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _YamlLimitError(
                    problem=f"nested more than {MAX_YAML_DEPTH} levels deep",
                    problem_mark=self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expanded_size(node)
        return super().construct_document(node)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expanded_size(root: yaml.Node) -> None:
    """Raise if ``root`` expands to more than MAX_YAML_NODES nodes, or an alias is recursive.

    An alias is a reference to an anchored node, so a small file can name a node 9**9
    times (billion laughs). Sizes are memoised per node and capped, and the walk keeps
    its own stack, so this costs one visit per distinct node.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            sizes[key] = min(total, MAX_YAML_NODES + 1)
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise _YamlLimitError(
                problem="an alias refers to a node that contains it (recursive alias)",
                problem_mark=node.start_mark,
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    if sizes[id(root)] > MAX_YAML_NODES:
        raise _YamlLimitError(
            problem=f"more than {MAX_YAML_NODES} YAML nodes once aliases are expanded "
            "(an alias bomb?)",
            problem_mark=root.start_mark,
        )


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    # Only keys written in this mapping can be duplicates: keys merged in with
    # ``<<: *defaults`` may be overridden (construct_mapping prepends them to node.value).
    own_keys = [k for k, _ in node.value if isinstance(k, yaml.ScalarNode) and k.tag != _MERGE_TAG]
    mapping = loader.construct_mapping(node, deep=True)
    lines: dict[str, int] = {}
    for key_node in own_keys:
        if key_node.value in lines:
            # PyYAML keeps the last of two equal keys; a config must not silently lose one.
            raise yaml.constructor.ConstructorError(
                problem=f"duplicate key '{key_node.value}' (first on line "
                f"{lines[key_node.value]}); keep only one",
                problem_mark=key_node.start_mark,
            )
        lines[key_node.value] = key_node.start_mark.line + 1
    return _LinedDict(mapping, lines)


class _LinedDict(dict):
    """A dict that also knows the YAML line of each key."""

    def __init__(self, data: Mapping[str, Any], lines: dict[str, int]) -> None:
        super().__init__(data)
        self.lines = lines


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML file into a dict (keys remember their line numbers).

    Raises :class:`ConfigInputError` for a file that is not UTF-8 or is over a YAML
    limit, :class:`ConfigError` for a missing file or invalid YAML.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigInputError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); save the file as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass: safe
    except _YamlLimitError as exc:
        raise ConfigInputError(f"{_where(path, exc)}: YAML limit: {exc.problem}") from None
    except yaml.reader.ReaderError as exc:  # its str() spans two lines; say it in one
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            f"{path}:{line}: invalid YAML: unacceptable character #x{exc.character:04x} "
            f"({exc.reason})"
        ) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{_where(path, exc)}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _where(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"{path}:{mark.line + 1}" if mark else str(path)


def _line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    line = None
    node = data
    for part in loc:
        if isinstance(node, _LinedDict) and part in node.lines:
            line = node.lines[part]
        in_mapping = isinstance(node, Mapping) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (in_mapping or in_list):
            break
        node = node[part]
    return line


def format_validation_error(
    exc: ValidationError, *, source: str, data: Any = None, prefix: tuple[str, ...] = ()
) -> str:
    """One readable line per problem: ``file:line: field.path: message``."""
    lines: list[tuple[int, str]] = []
    for err in exc.errors(include_url=False):
        loc = prefix + tuple(err["loc"])
        path = ".".join(str(p) for p in loc) or "<root>"
        # An unknown key is reported at its parent's path, but its line is the key's own.
        key_loc = (*loc, err["ctx"]["key"]) if err["type"] == "unknown_key" else loc
        line = _line_of(data, key_loc) if data is not None else None
        where = f"{source}:{line}" if line else source
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key '{loc[-1]}'; remove it or check its spelling"
        value = err.get("input")
        if isinstance(value, str):
            msg = msg.replace(value, redact_uri(value))
        if err["type"] in _SHOW_INPUT_TYPES and isinstance(value, _SCALARS):
            shown = redact_uri(value) if isinstance(value, str) else value
            msg = f"{msg} (got {shown!r})"
        lines.append((line or 0, f"{where}: {path}: {msg}"))
    # File order reads best: problems sorted by line (stable, so unlined ones keep their order).
    return "\n".join(text for _, text in sorted(lines, key=lambda item: item[0]))


_SCALARS = (str, int, float, bool, type(None))
# pydantic error types whose message does not repeat the offending value: we append it.
_SHOW_INPUT_TYPES = frozenset(
    {
        "bool_parsing",
        "bool_type",
        "int_parsing",
        "int_type",
        "int_from_float",
        "float_parsing",
        "float_type",
        "string_type",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "literal_error",
        "dict_type",
        "list_type",
        "model_type",
        "model_attributes_type",
    }
)


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
    # Replace only the MLflow block: any other observability settings stay as loaded.
    observability = (config.observability or ObservabilityConfig()).model_copy(
        update={"mlflow": mlflow_cfg}
    )
    return config.model_copy(update={"observability": observability})


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


def _reject_misplaced_keys(data: Mapping[str, Any], name: str) -> None:
    """A file with no ``config:`` block must not hide a misspelt or misplaced one.

    Without this, ``confg:``, a top-level ``observability:`` beside ``flow:``, or a bare
    ``{"enabled": true}`` dict would silently load as the disabled default.
    """
    keys = [k for k in data if isinstance(k, str)]
    nested = {"mlflow", *MLFlowConfig.model_fields}
    for key in keys:
        line = data.lines.get(key) if isinstance(data, _LinedDict) else None
        where = f"{name}:{line}" if line else name
        if key in GlobalConfig.model_fields:
            raise ConfigError(f"{where}: {key}: belongs under the 'config:' block (config.{key})")
        close = difflib.get_close_matches(key, ["config", *GlobalConfig.model_fields], 1, 0.8)
        if close:
            raise ConfigError(f"{where}: unknown top-level key '{key}' (did you mean {close[0]}?)")
    if keys and set(keys) <= nested:
        block = "config.observability" if "mlflow" in keys else "config.observability.mlflow"
        raise ConfigError(
            f"{name}: keys {', '.join(sorted(keys))} belong under '{block}'; nest them there "
            "(or pass an MLFlowConfig / GlobalConfig object)"
        )


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
        got = type(data["config"]).__name__
        raise ConfigError(f"{name}: config: expected a mapping of settings, got {got}")
    elif set(data) <= set(GlobalConfig.model_fields):
        config = parse_global_config(data, source=name, raw=data)
    else:
        _reject_misplaced_keys(data, name)
        config = GlobalConfig()
    return apply_env_overrides(config) if env else config
