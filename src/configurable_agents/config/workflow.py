"""The workflow file: ``flow``, ``state``, ``nodes``, ``edges`` and the ``config:`` block.

Field-level problems are caught by pydantic; cross-references (a prompt naming an
unknown state field, an edge to an unknown node, a node that can never run or
never finish) are caught by :func:`reference_problems` before anything runs. Every
problem carries its location (``nodes.1.prompt``) and a message that names the
node, so :func:`load_workflow` can report ``file:line: path: message`` like the
global config loader does.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from configurable_agents.config.loader import (
    ConfigError,
    apply_env_overrides,
    format_validation_error,
    read_yaml,
)
from configurable_agents.config.schema import GlobalConfig, LLMConfig, StrictModel

START = "START"
END = "END"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FLOW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_STATE_REF = re.compile(r"\{state\.([^{}]*)\}")
_BARE_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

_SCALARS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
SUPPORTED_TYPES = "str, int, float, bool, list, dict, list[T], dict[str, T]"


def parse_type(spec: str) -> Any:
    """The Python type for a type name such as ``str`` or ``list[int]``."""
    text = spec.replace(" ", "")
    if text in _SCALARS:
        return _SCALARS[text]
    if text == "list":
        return list[Any]
    if text == "dict":
        return dict[str, Any]
    if text.startswith("list[") and text.endswith("]"):
        return list[parse_type(text[5:-1])]
    if text.startswith("dict[str,") and text.endswith("]"):
        return dict[str, parse_type(text[9:-1])]
    raise ValueError(f"unsupported type '{spec}'; use one of: {SUPPORTED_TYPES}")


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
            if not _NAME.match(name):
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
        if not _NAME.match(value):
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


@dataclass(frozen=True)
class Problem:
    """A cross-reference error: where it is (pydantic-style loc) and what is wrong."""

    loc: tuple[str | int, ...]
    message: str


class WorkflowReferenceError(ValueError):
    """Raised by :class:`WorkflowConfig` validation; carries every problem with its loc."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, p.loc))}: {p.message}" for p in problems))


class WorkflowConfig(StrictModel):
    """A whole workflow file."""

    schema_version: Literal["1.0"] = "1.0"
    flow: FlowMeta
    state: StateSchema
    nodes: list[NodeConfig] = Field(min_length=1)
    edges: list[EdgeConfig] = Field(min_length=1)
    config: GlobalConfig = Field(default_factory=GlobalConfig)

    @field_validator("schema_version", mode="before")
    @classmethod
    def _schema_version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _check_references(self) -> WorkflowConfig:
        problems = reference_problems(self)
        if problems:
            raise WorkflowReferenceError(problems)
        return self

    # Derived views the executor and the CLI use.
    @property
    def llm(self) -> LLMConfig:
        return self.config.llm or LLMConfig()

    def node(self, node_id: str) -> NodeConfig:
        return next(n for n in self.nodes if n.id == node_id)

    def node_llm(self, node: NodeConfig) -> LLMConfig:
        """The global LLM settings with the node's overrides applied."""
        override = node.llm.model_dump(exclude_none=True) if node.llm else {}
        return self.llm.model_copy(update=override)

    @property
    def output_fields(self) -> list[str]:
        """State fields some node writes, in node order."""
        seen: dict[str, None] = {}
        for node in self.nodes:
            seen.update(dict.fromkeys(node.outputs))
        return list(seen)

    @property
    def required_inputs(self) -> list[str]:
        return [name for name, f in self.state.fields.items() if f.required]

    @property
    def prompts_sha(self) -> str:
        """One hash over every node's prompt template, so prompt edits are visible."""
        text = "\n".join(f"{n.id}\0{n.prompt_template_sha}" for n in sorted(self.nodes, key=_id))
        return template_sha(text)


def _id(node: NodeConfig) -> str:
    return node.id


def template_sha(text: str) -> str:
    """Short, stable hash of a prompt template (first 12 hex of sha256)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def template_fields(template: str) -> list[str]:
    """The state field names a template reads (``{state.topic}`` -> ``topic``)."""
    return [m.group(1) for m in _STATE_REF.finditer(template)]


def _hint(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _node_problems(wf: WorkflowConfig) -> list[Problem]:
    from configurable_agents.runtime.tools import available_tools  # runtime imports config

    fields = list(wf.state.fields)
    known_tools = available_tools()
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, node in enumerate(wf.nodes):
        where = f"node '{node.id}'"
        if node.id in seen:
            problems.append(Problem(("nodes", i, "id"), f"{where} is defined twice"))
        seen.add(node.id)
        for ref in template_fields(node.prompt):
            if not _NAME.match(ref):
                problems.append(
                    Problem(
                        ("nodes", i, "prompt"),
                        f"{where}: '{{state.{ref}}}' is not a field reference",
                    )
                )
            elif ref not in wf.state.fields:
                problems.append(
                    Problem(
                        ("nodes", i, "prompt"),
                        f"{where}: prompt references unknown state field '{ref}'"
                        f"{_hint(ref, fields)}; state fields: {', '.join(fields)}",
                    )
                )
        for ref in _BARE_REF.findall(node.prompt):
            if ref in wf.state.fields:
                problems.append(
                    Problem(
                        ("nodes", i, "prompt"),
                        f"{where}: prompt uses '{{{ref}}}'; write '{{state.{ref}}}' to insert the "
                        "state field",
                    )
                )
        for j, out in enumerate(node.outputs):
            if out not in wf.state.fields:
                problems.append(
                    Problem(
                        ("nodes", i, "outputs", j),
                        f"{where}: output '{out}' is not a state field{_hint(out, fields)}; "
                        f"state fields: {', '.join(fields)}",
                    )
                )
        problems += _output_schema_problems(wf, i, node)
        for j, name in enumerate(node.tools):
            if name not in known_tools:
                problems.append(
                    Problem(
                        ("nodes", i, "tools", j),
                        f"{where}: unknown tool '{name}'{_hint(name, known_tools)}; "
                        f"available tools: {', '.join(known_tools)}",
                    )
                )
    return problems


def _output_schema_problems(wf: WorkflowConfig, i: int, node: NodeConfig) -> list[Problem]:
    if node.output_schema is None:
        return []
    where = f"node '{node.id}'"
    problems = []
    declared = {f.name: f for f in node.output_schema.fields}
    for out in node.outputs:
        if out not in declared:
            problems.append(
                Problem(
                    ("nodes", i, "output_schema", "fields"),
                    f"{where}: output '{out}' has no field in output_schema",
                )
            )
    for j, field in enumerate(node.output_schema.fields):
        loc = ("nodes", i, "output_schema", "fields", j)
        if field.name not in node.outputs:
            problems.append(
                Problem(
                    loc,
                    f"{where}: output_schema field '{field.name}' is not "
                    f"listed in outputs {node.outputs}",
                )
            )
            continue
        state_field = wf.state.fields.get(field.name)
        if state_field is not None and state_field.type != field.type:
            problems.append(
                Problem(
                    loc,
                    f"{where}: output_schema field '{field.name}' is "
                    f"{field.type} but state field is {state_field.type}",
                )
            )
    return problems


def _edge_problems(wf: WorkflowConfig) -> list[Problem]:
    ids = [n.id for n in wf.nodes]
    problems: list[Problem] = []
    for i, edge in enumerate(wf.edges):
        for key, names, bad in (("from", edge.sources, END), ("to", edge.targets, START)):
            for name in names:
                if name == bad:
                    problems.append(
                        Problem(
                            ("edges", i, key),
                            f"edge {key} '{name}': {bad} cannot be an edge's {key}",
                        )
                    )
                elif name not in ids and name not in (START, END):
                    problems.append(
                        Problem(
                            ("edges", i, key),
                            f"edge {key} unknown node '{name}'{_hint(name, ids)}; "
                            f"nodes: {', '.join(ids)} (and START, END)",
                        )
                    )
    return problems


def _graph_problems(wf: WorkflowConfig) -> list[Problem]:
    """Reachability, termination, cycles and parallel writes to one field."""
    succ: dict[str, set[str]] = {n.id: set() for n in wf.nodes} | {START: set(), END: set()}
    for edge in wf.edges:
        for s in edge.sources:
            succ[s].update(edge.targets)
    pred: dict[str, set[str]] = {k: set() for k in succ}
    for s, targets in succ.items():
        for t in targets:
            pred[t].add(s)
    problems: list[Problem] = []
    index = {n.id: i for i, n in enumerate(wf.nodes)}
    reached = _walk(START, succ)
    finishing = _walk(END, pred)
    for node in wf.nodes:
        if node.id not in reached:
            problems.append(
                Problem(
                    ("nodes", index[node.id], "id"),
                    f"node '{node.id}' is never reached from START; add an edge to it",
                )
            )
        elif node.id not in finishing:
            problems.append(
                Problem(
                    ("nodes", index[node.id], "id"),
                    f"node '{node.id}' has no path to END; add an edge from it",
                )
            )
    cycle = _find_cycle(succ)
    if cycle:
        problems.append(
            Problem(
                ("edges",),
                "edges form a cycle: "
                + " -> ".join(cycle)
                + "; loops need conditional routing, which v0.1 does not have",
            )
        )
    outputs = {n.id: set(n.outputs) for n in wf.nodes}
    for source, targets in succ.items():
        siblings = sorted(t for t in targets if t in outputs)
        for a_i, a in enumerate(siblings):
            for b in siblings[a_i + 1 :]:
                clash = sorted(outputs[a] & outputs[b])
                if clash:
                    problems.append(
                        Problem(
                            ("nodes", index[b], "outputs"),
                            f"nodes '{a}' and '{b}' both follow '{source}' and run in parallel, "
                            f"but both write state field '{clash[0]}'",
                        )
                    )
    return problems


def _walk(start: str, graph: Mapping[str, set[str]]) -> set[str]:
    seen, stack = {start}, [start]
    while stack:
        for nxt in graph[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _find_cycle(succ: Mapping[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(succ[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(succ):
        if node not in state and (found := visit(node)):
            return found
    return None


def reference_problems(wf: WorkflowConfig) -> list[Problem]:
    """Every cross-reference error in a field-valid workflow (empty when it is sound)."""
    problems = _node_problems(wf) + _edge_problems(wf)
    if not problems:  # graph checks assume every name resolves
        problems = _graph_problems(wf)
    return problems


def _as_config_error(exc: ValidationError, source: str, data: Any) -> ConfigError:
    problems = [
        p
        for err in exc.errors(include_url=False)
        if isinstance(err.get("ctx", {}).get("error"), WorkflowReferenceError)
        for p in err["ctx"]["error"].problems
    ]
    if problems:
        exc = ValidationError.from_exception_data(
            exc.title,
            [
                InitErrorDetails(
                    type=PydanticCustomError(
                        "workflow_reference", "{message}", {"message": p.message}
                    ),
                    loc=p.loc,
                    input=None,
                )
                for p in problems
            ],
        )
    return ConfigError(format_validation_error(exc, source=source, data=data))


def parse_workflow(data: Mapping[str, Any], *, source: str = "<workflow>") -> WorkflowConfig:
    """Validate a workflow dict; ConfigError lines read ``source:line: path: message``."""
    try:
        return WorkflowConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise _as_config_error(exc, source, data) from None


def load_workflow(path: str | Path, *, env: bool = True) -> WorkflowConfig:
    """Load a workflow YAML file; ``CONFIGURABLE_AGENTS_MLFLOW_*`` overrides apply when ``env``."""
    workflow = parse_workflow(read_yaml(path), source=str(path))
    if env:
        workflow = workflow.model_copy(update={"config": apply_env_overrides(workflow.config)})
    return workflow
