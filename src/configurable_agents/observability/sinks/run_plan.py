"""RunPlan: one tracking run to write (params, metrics, tags, artifacts, nested runs).

A plain container, so the MLflow sink, its spool and its replay share it without a
cycle; which keys go in it (ADR-011's names) is decided in ``sinks/mlflow/plan.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from configurable_agents.observability.facts.model import CallFacts, NodeFacts


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
    node: NodeFacts | None = None
    calls: tuple[CallFacts, ...] = ()  # the parent: all the workflow's calls; a node: its own

    def walk(self) -> Iterable[RunPlan]:
        yield self
        for child in self.children:
            yield from child.walk()
