"""What the MLflow sink's parts (early runs, spooling, drain, rollups) may use of the sink.

The parts each do one job for :class:`~.sink.MlflowSink`; they see it through this
protocol, not its class, so the import graph stays one-way (sink -> parts -> host).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from configurable_agents.config.schema import MLFlowConfig
    from configurable_agents.observability.diagnostics import Diagnostics
    from configurable_agents.observability.facts.model import WorkflowFacts
    from configurable_agents.observability.sinks.base import Counters
    from configurable_agents.observability.sinks.mlflow.breaker import Breaker
    from configurable_agents.observability.sinks.mlflow.plan import PlanOptions, RunPlan
    from configurable_agents.observability.sinks.mlflow.writer import MlflowWriter


class SinkHost(Protocol):
    config: MLFlowConfig
    counters: Counters
    diagnostics: Diagnostics
    breaker: Breaker
    workers: int
    plan_options: PlanOptions

    @property
    def writer(self) -> MlflowWriter: ...

    def encode(self, facts: WorkflowFacts, *, count: bool = True
               ) -> tuple[str, RunPlan] | None: ...

    def trace_tags(self, facts: WorkflowFacts) -> dict[str, str]: ...

    def run_id_for(self, langchain_run_id: str) -> str | None: ...

    def probe(self) -> bool: ...

    def backlog(self) -> int: ...

    def wake(self) -> None: ...
