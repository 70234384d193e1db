"""The plain data every sink reads: a run plan tree and the facts of each model call.

A :class:`RunPlan` is one run as MLflow shows it (ADR-011 params, metrics, tags,
artifacts) with its nested node plans; :class:`CallFacts` is what one model call
consumed and cost. Both are computed once per workflow (:mod:`.assemble`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from configurable_agents.observability.capture.records import LLMCallRecord, NodeRecord
from configurable_agents.observability.facts.usage import TokenUsage

MAX_TAG_VALUE = 5000
MAX_KEY_CHARS = 250  # MLflow's limit for param, metric and tag keys
_INVALID_NAME_CHARS = re.compile(r"[^\w\-. /:]")
_INVALID_ARTIFACT_CHARS = re.compile(r"[^\w\-. ]")
MAX_ARTIFACT_SEGMENTS = 8
MAX_ARTIFACT_SEGMENT_CHARS = 120


@dataclass(slots=True)
class CallFacts:
    """What one LLM call cost and consumed, computed once and shared by runs and traces."""

    call: LLMCallRecord
    model: str | None
    provider: str | None
    usage: TokenUsage
    cost_usd: float
    priced: bool
    cost_source: str
    prompt_text: str
    response_text: str
    hint: str | None = None
    breakdown: Any = None  # CostBreakdown: input / cache / output / reasoning USD


@dataclass(slots=True)
class RunPlan:
    """One MLflow run to write: the parent (workflow) or a nested node run."""

    run_name: str
    start_ms: int
    end_ms: int
    status: str  # MLflow run status: FINISHED | FAILED | KILLED
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    children: list[RunPlan] = field(default_factory=list)
    node: NodeRecord | None = None
    calls: list[CallFacts] = field(default_factory=list)

    def walk(self) -> Iterable[RunPlan]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(slots=True)
class AssembleOptions:
    """Per-handler settings the assembler needs."""

    workflow_params: Mapping[str, Any] = field(default_factory=dict)
    static_tags: Mapping[str, str] = field(default_factory=dict)
    tag_metadata_keys: tuple[str, ...] = ()
    log_artifacts: bool = True
    max_param_chars: int = 6000
    max_artifact_chars: int = 5_000_000
    run_name_template: str | None = None
    redact: Callable[[str], str] | None = None



def sanitize_key(key: str) -> str:
    """MLflow names allow alphanumerics, _ - . space : / only; replace the rest."""
    cleaned = _INVALID_NAME_CHARS.sub("_", key).strip() or "_"
    return cleaned[:250]


def safe_str(value: object, limit: int | None = None) -> str:
    """``str(value)`` that never raises (a hostile ``__str__``) and holds no lone surrogate."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:
        text = f"<unprintable {type(value).__name__}>"
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:limit] if limit is not None else text


def mlflow_key(key: str) -> str:
    """A param/metric/tag key MLflow accepts; the documented mapping (docs/sinks/mlflow.md).

    Characters outside ``[A-Za-z0-9_-. /:]`` become ``_``; the key is read as a path the
    way MLflow's ``path_not_unique`` check does: empty, ``.`` and ``..`` segments become
    ``_`` and leading, trailing or doubled ``/`` go; at most 250 characters.
    """
    cleaned = _INVALID_NAME_CHARS.sub("_", str(key)).strip()
    segments = [s for s in cleaned.split("/") if s]
    segments = ["_" if s.strip(".") == "" else s for s in segments]
    result = "/".join(segments)[:MAX_KEY_CHARS].rstrip("/").strip() or "_"
    return result if not result.startswith(".") or result.strip(".") else "_"


def safe_artifact_name(name: object) -> str | None:
    """A relative artifact path that can only land inside the run's folder, or None.

    Artifact names come from metadata, state, spool files and config: they are data,
    never paths. Both ``/`` and ``\\`` separate folders; empty, ``.`` and ``..`` parts
    are dropped (so ``/abs/x.txt`` -> ``abs/x.txt``, ``../../x.txt`` -> ``x.txt``); other
    characters outside ``[A-Za-z0-9_-. ]`` become ``_``. None when nothing is left.
    """
    if not isinstance(name, str):
        return None
    parts = []
    for raw in re.split(r"[/\\]+", name):
        part = _INVALID_ARTIFACT_CHARS.sub("_", raw).strip()[:MAX_ARTIFACT_SEGMENT_CHARS]
        if part.strip(".") == "":
            continue
        parts.append(part)
    if not parts or len(parts) > MAX_ARTIFACT_SEGMENTS:
        return None
    return "/".join(parts)
