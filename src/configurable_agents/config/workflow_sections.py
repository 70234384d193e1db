"""The sections of a workflow file, field by field: ``flow``, ``state``, ``nodes``, ``edges``.

Each model checks only itself (names, types, defaults); checks that need more than
one section (a prompt naming a state field, an edge naming a node) are in
:mod:`.workflow_checks`, and the whole file is :class:`~.workflow.WorkflowConfig`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from configurable_agents.config.schema import StrictModel

__all__ = [
    "END",
    "IDENTIFIER",
    "MAX_TYPE_DEPTH",
    "START",
    "SUPPORTED_TYPES",
    "EdgeConfig",
    "FlowMeta",
    "NodeConfig",
    "NodeLLMOverride",
    "OutputField",
    "OutputSchema",
    "StateField",
    "StateSchema",
    "parse_type",
    "template_sha",
]

START = "START"
END = "END"

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""A Python identifier: what state field names and node ids must be."""
_FLOW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

_SCALARS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
SUPPORTED_TYPES = "str, int, float, bool, list, dict, list[T], dict[str, T]"
MAX_TYPE_DEPTH = 8
"""Deepest container nesting a type name may have (``list[list[...]]``)."""


def parse_type(spec: str) -> Any:
    """The Python type for a type name such as ``str`` or ``list[int]``.

    Containers nest at most ``MAX_TYPE_DEPTH`` deep; the spec is read with a loop,
    not recursion, so no spec can exhaust Python's stack.
    """
    text = spec.replace(" ", "")
    wrappers: list[str] = []  # outermost first: "list" or "dict"
    while text.startswith(("list[", "dict[str,")) and text.endswith("]"):
        if len(wrappers) == MAX_TYPE_DEPTH:
            raise ValueError(
                f"type '{spec}' nests containers more than {MAX_TYPE_DEPTH} deep"
            )
        kind = "list" if text.startswith("list[") else "dict"
        wrappers.append(kind)
        text = text[5:-1] if kind == "list" else text[9:-1]
    if text in _SCALARS:
        result: Any = _SCALARS[text]
    elif text == "list":
        result = list[Any]
    elif text == "dict":
        result = dict[str, Any]
    else:
        raise ValueError(f"unsupported type '{spec}'; use one of: {SUPPORTED_TYPES}")
    for kind in reversed(wrappers):
        result = list[result] if kind == "list" else dict[str, result]
    return result


def _normalise_type(value: str) -> str:
    parse_type(value)
    return value.replace(" ", "")


class FlowMeta(StrictModel):
    """``flow:``: what the workflow is called and which version of it this file is."""

    name: str
    version: str = "1.0.0"
    description: str = ""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _FLOW_NAME.match(value):
            raise ValueError(
                f"flow name '{value}' must start with a letter or digit and contain only "
                "letters, digits, '_', '.', '-'"
            )
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        # `version: 1.0` in YAML is a float; keep what the user wrote.
        return str(value) if isinstance(value, int | float) else value


class StateField(StrictModel):
    """One typed field of the workflow state."""

    type: str = "str"
    required: bool = False
    default: Any = None
    description: str = ""

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        return _normalise_type(value)

    @model_validator(mode="after")
    def _check_default(self) -> StateField:
        if self.required and self.default is not None:
            raise ValueError("a required field cannot have a default; drop one of them")
        if self.default is not None:
            try:
                TypeAdapter(parse_type(self.type)).validate_python(self.default)
            except ValidationError as exc:
                msg = exc.errors(include_url=False)[0]["msg"]
                raise ValueError(
                    f"default {self.default!r} is not a valid {self.type}: {msg}"
                ) from None
        return self

    @property
    def python_type(self) -> Any:
        return parse_type(self.type)


class StateSchema(StrictModel):
    """``state:``: the fields nodes read (``{state.x}``) and write (``outputs``)."""

    fields: dict[str, StateField] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _check_names(cls, value: dict[str, StateField]) -> dict[str, StateField]:
        for name in value:
            if not IDENTIFIER.match(name):
                raise ValueError(f"state field name '{name}' must be a Python identifier")
        return value


class OutputField(StrictModel):
    name: str
    type: str = "str"
    description: str = ""

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        return _normalise_type(value)


class OutputSchema(StrictModel):
    """A node's structured output; the model's JSON reply is validated against it."""

    type: Literal["object"] = "object"
    fields: list[OutputField] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _unique(cls, value: list[OutputField]) -> list[OutputField]:
        names = [f.name for f in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"output field '{dupes[0]}' is listed twice")
        return value


class NodeLLMOverride(StrictModel):
    """Per-node ``llm:``: any key given here replaces the global ``config.llm`` value."""

    provider: Literal["google", "openai", "anthropic", "demo"] | None = None
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)


class NodeConfig(StrictModel):
    id: str
    description: str = ""
    prompt: str = Field(min_length=1)
    outputs: list[str] = Field(min_length=1)
    output_schema: OutputSchema | None = None
    llm: NodeLLMOverride | None = None
    tools: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if value in (START, END):
            raise ValueError(f"'{value}' is reserved for edges; pick another node id")
        if not IDENTIFIER.match(value):
            raise ValueError(f"node id '{value}' must be a Python identifier")
        return value

    @property
    def prompt_template_sha(self) -> str:
        return template_sha(self.prompt)


class EdgeConfig(StrictModel):
    """``{from: a, to: b}``; ``to: [b, c]`` fans out, ``from: [b, c]`` waits for both."""

    source: str | list[str] = Field(alias="from")
    to: str | list[str]

    @property
    def sources(self) -> list[str]:
        return [self.source] if isinstance(self.source, str) else list(self.source)

    @property
    def targets(self) -> list[str]:
        return [self.to] if isinstance(self.to, str) else list(self.to)


def template_sha(text: str) -> str:
    """Short, stable hash of a prompt template (first 12 hex of sha256)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
