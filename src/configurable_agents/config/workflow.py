"""The workflow file: ``flow``, ``state``, ``nodes``, ``edges`` and the ``config:`` block.

Field-level problems are caught by pydantic (the section models live in
:mod:`.workflow_sections`); cross-references (a prompt naming an unknown state
field, an edge to an unknown node, a node that can never run or never finish) are
caught by :mod:`.workflow_checks` before anything runs. Every problem carries its
location (``nodes.1.prompt``) and a message that names the node, so
:func:`load_workflow` can report ``file:line: path: message`` like the global
config loader does.

A workflow has at most ``MAX_NODES`` nodes and ``MAX_EDGES`` edges: a bigger file is
refused up front with :class:`ConfigInputError` (the CLI exits 2), before any
validation walks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from configurable_agents.config.loader import (
    ConfigError,
    ConfigInputError,
    apply_env_overrides,
    format_validation_error,
    read_yaml,
)
from configurable_agents.config.schema import GlobalConfig, LLMConfig, StrictModel
from configurable_agents.config.workflow_checks import (
    Problem,
    WorkflowReferenceError,
    find_reference_problems,
    template_fields,
)
from configurable_agents.config.workflow_sections import (
    END,
    START,
    SUPPORTED_TYPES,
    EdgeConfig,
    FlowMeta,
    NodeConfig,
    NodeLLMOverride,
    OutputField,
    OutputSchema,
    StateField,
    StateSchema,
    parse_type,
    template_sha,
)

__all__ = [
    "END",
    "MAX_EDGES",
    "MAX_NODES",
    "START",
    "SUPPORTED_TYPES",
    "EdgeConfig",
    "FlowMeta",
    "NodeConfig",
    "NodeLLMOverride",
    "OutputField",
    "OutputSchema",
    "Problem",
    "StateField",
    "StateSchema",
    "WorkflowConfig",
    "WorkflowReferenceError",
    "load_workflow",
    "parse_type",
    "parse_workflow",
    "reference_problems",
    "template_fields",
    "template_sha",
]

MAX_NODES = 1000
"""Most nodes one workflow file may define (each runs as one LangGraph step or more)."""
MAX_EDGES = 5000
"""Most entries one workflow's ``edges`` list may have."""


class WorkflowConfig(StrictModel):
    """A whole workflow file."""

    schema_version: Literal["1.0"] = "1.0"
    flow: FlowMeta
    state: StateSchema
    nodes: list[NodeConfig] = Field(min_length=1, max_length=MAX_NODES)
    edges: list[EdgeConfig] = Field(min_length=1, max_length=MAX_EDGES)
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


def reference_problems(wf: WorkflowConfig) -> list[Problem]:
    """Every cross-reference error in a field-valid workflow (empty when it is sound)."""
    return find_reference_problems(wf.state, wf.nodes, wf.edges)


def _check_size(data: Mapping[str, Any], source: str) -> None:
    """Refuse a workflow over ``MAX_NODES`` / ``MAX_EDGES`` before anything walks it."""
    for key, limit in (("nodes", MAX_NODES), ("edges", MAX_EDGES)):
        items = data.get(key)
        if isinstance(items, list) and len(items) > limit:
            raise ConfigInputError(
                f"{source}: {key}: {len(items)} {key}, more than the limit of {limit} "
                "per workflow; split it into smaller workflows"
            )


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
    _check_size(data, source)
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
