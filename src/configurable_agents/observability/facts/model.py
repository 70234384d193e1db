"""The fact tree: one finished workflow, typed, frozen and sink-neutral, like OTel's ReadableSpan.

The pipeline builds it once per workflow (:mod:`.build`) from the capture layer's
records: usage and cost computed, every string that can leave the process redacted
(when ``redact_pii`` is on) and freed of lone surrogates, content made JSON-able.
Sinks only read it and each encodes it its own way (the MLflow run plan lives in
``sinks/mlflow/plan.py``); nothing here knows a sink's key names. Collections are
tuples and read-only mappings, so a sink cannot change what the next one sees.

Content fields (``inputs``, ``outputs``, messages, tool payloads) are JSON-able
trees (dicts, lists, str, numbers, None): treat them as read-only too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from uuid import UUID

from configurable_agents.observability.facts.token_usage import TokenUsage


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ErrorFacts:
    """An exception as text: type names, redacted message and traceback."""

    type: str  # class name, e.g. ValueError
    qualname: str
    message: str
    traceback: str


@dataclass(frozen=True, slots=True)
class ToolFacts:
    """One tool or retriever call."""

    run_id: UUID
    name: str
    kind: str  # "tool" or "retriever"
    start_ns: int
    end_ns: int | None
    call_id: str | None
    arguments: Any  # JSON-able, redacted
    result: Any  # JSON-able, redacted (a ToolMessage is shown as its content); None on error
    error: ErrorFacts | None


@dataclass(frozen=True, slots=True)
class CallFacts:
    """One model call: what it consumed and cost, and what it said (redacted)."""

    run_id: UUID
    name: str | None  # the LangChain run name (the model class)
    operation: str  # "chat" or "text_completion"
    start_ns: int
    end_ns: int | None
    first_token_ns: int | None
    retry_attempt: int
    model: str | None
    provider: str | None
    response_model: str | None  # the provider's echoed (often dated) name
    usage: TokenUsage
    cost_usd: float
    priced: bool
    cost_source: str
    breakdown: Any  # CostBreakdown (input / cache / output / reasoning USD) or None
    hint: str | None  # why usage is estimated (e.g. a proxy that streams no usage)
    prompt_text: str
    response_text: str
    # Chat inputs as OpenAI-shaped message dicts, one tuple per prompt of the batch;
    # completion models have ``prompts`` instead.
    input_messages: tuple[tuple[Mapping[str, Any], ...], ...] | None
    prompts: tuple[str, ...]
    # One per generation of each prompt: {"message": {...}, "finish_reason": ...} or {"text"}.
    generations: tuple[tuple[Mapping[str, Any], ...], ...]
    finish_reasons: tuple[str, ...]
    response_id: str | None
    request_params: Mapping[str, Any]  # invocation params without tool definitions, redacted
    tool_definitions: tuple[Any, ...]  # the tools offered to the model, redacted
    temperature: float | None
    max_tokens: int | None
    error: ErrorFacts | None
    # It answered a ``with_fallbacks`` after an earlier candidate failed: the answering model.
    fallback_answer: bool = False


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """One executed graph node (all its attempts), or a subgraph node with children.

    The synthetic node holding calls made outside any node (a bare model call, an LCEL
    chain) has ``node_id`` None; it is :attr:`WorkflowFacts.direct`, never in ``nodes``.
    """

    node_id: str | None
    run_id: UUID
    start_ns: int
    end_ns: int | None
    status: str  # FINISHED, FAILED, KILLED or INTERRUPTED
    step: int | None
    checkpoint_ns: str | None
    retries: int
    handoff_to: str | None
    error: ErrorFacts | None
    inputs: Any
    outputs: Any
    calls: tuple[CallFacts, ...]  # made directly in this node
    tools: tuple[ToolFacts, ...]
    children: tuple[NodeFacts, ...]
    # Set by producers (DSPy): extra params, texts and numbers of this node.
    params: Mapping[str, Any] = field(default_factory=_empty)
    artifacts: Mapping[str, str] = field(default_factory=_empty)
    custom_metrics: Mapping[str, float] = field(default_factory=_empty)

    def walk(self) -> Iterator[NodeFacts]:
        """This node, then its subgraph nodes, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def all_calls(self) -> Iterator[CallFacts]:
        """Model calls of this node and of its subgraph nodes."""
        for node in self.walk():
            yield from node.calls

    @property
    def duration_s(self) -> float:
        return max(0, (self.end_ns or self.start_ns) - self.start_ns) / 1e9


@dataclass(frozen=True, slots=True)
class Totals:
    """The workflow's computed numbers (never from caller metadata)."""

    usage: TokenUsage
    cost_usd: float
    duration_s: float
    node_count: int
    llm_calls: int
    retries: int
    fallbacks: int
    unpriced_models: tuple[str, ...]
    tokens_estimated: bool
    estimation_methods: tuple[str, ...]
    usage_hint: str | None
    llm_cache_hit: bool


@dataclass(frozen=True, slots=True)
class CallerMetadata:
    """What the caller supplied in invocation metadata (``ca_params``, ``ca_metrics``,
    ``ca_tags``, ``ca_artifacts``): its own namespace, never a computed number.

    Keys and values are text already (a value whose ``__str__`` raises is dropped alone);
    metrics are finite numbers. Sinks decide how to keep them apart from computed keys.
    """

    params: Mapping[str, str] = field(default_factory=_empty)
    metrics: Mapping[str, float] = field(default_factory=_empty)
    tags: Mapping[str, str] = field(default_factory=_empty)
    artifacts: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class WorkflowFacts:
    """One root invocation: identity, attribution, status, totals and the node tree."""

    run_id: UUID  # the LangChain root run id: every sink's idempotency key
    name: str
    version: str | None
    kind: str  # "graph", "chain", "llm", "tool"
    display_name: str  # the run name (template applied): "{name} v{version} {short id}"
    start_ns: int
    end_ns: int
    # FINISHED, FAILED, KILLED or INTERRUPTED (a pause for a human: a finished run).
    status: str
    stop_reason: str | None  # with KILLED: closed_early or cancelled
    interrupt_kind: str | None
    interrupted_at: tuple[str, ...]
    error: ErrorFacts | None
    totals: Totals
    # Handler / config params (workflow identity such as prompts_sha), as text.
    params: Mapping[str, str]
    global_model: str | None
    global_temperature: Any
    # user_id, team, tenant_id, thread_id, ... plus the handler's static tags and
    # tag_metadata_keys: text, redacted.
    attribution: Mapping[str, str]
    caller: CallerMetadata
    inputs: Any
    outputs: Any  # None unless the workflow finished
    nodes: tuple[NodeFacts, ...]
    direct: NodeFacts | None  # calls and tools made outside any node
    # Caller-side context a sink took in its start notice (e.g. the app's active OTel span).
    sink_state: Mapping[str, Any] = field(default_factory=_empty)
    # Identifier-named metadata values as redacted text (for templates: experiment names).
    metadata_text: Mapping[str, str] = field(default_factory=_empty)
    # Not kept by sampling: sinks count it, MLflow folds it into a rollup run.
    sampled_out: bool = False
    warnings: tuple[str, ...] = field(default=())
    # The name and version given in code (handler arguments, else the graph's own name),
    # never from invocation metadata: what a bounded label (Prometheus) may trust.
    configured_name: str = ""
    configured_version: str | None = None

    @property
    def langchain_run_id(self) -> str:
        return str(self.run_id)

    @property
    def finished(self) -> bool:
        """Ended without failure (an interrupt is a finished run that paused)."""
        return self.status in ("FINISHED", "INTERRUPTED")

    @property
    def interrupted(self) -> bool:
        return self.status == "INTERRUPTED"

    def all_nodes(self) -> Iterator[NodeFacts]:
        """Every node (not ``direct``), depth first."""
        for node in self.nodes:
            yield from node.walk()

    def model_calls(self) -> Iterator[tuple[NodeFacts | None, CallFacts]]:
        """Every model call once, with the node it was made in (None: outside any node)."""
        if self.direct is not None:
            for call in self.direct.calls:
                yield None, call
        for node in self.all_nodes():
            for call in node.calls:
                yield node, call


@dataclass(frozen=True, slots=True)
class WorkflowStart:
    """A root invocation began: what a sink's start notice gets, on the caller's thread.

    ``sink_state`` is where a sink keeps caller-side context, keyed by its name (the
    OpenTelemetry sink keeps the app's active span there); the finished workflow's facts
    show it as :attr:`WorkflowFacts.sink_state`. ``describe`` builds the start-time facts
    (identity and attribution, redacted; no nodes yet): call it off the caller's thread.
    """

    run_id: UUID
    start_ns: int
    sink_state: dict[str, Any]
    describe: Any  # Callable[[], WorkflowFacts]
