"""WorkflowFacts: one finished workflow, priced, redacted and size-bounded once for every sink.

The pipeline builds this on its own thread from the capture layer's finished
:class:`WorkflowRecord`; each sink reads it and never recomputes usage, cost or
redaction, so MLflow runs, the MLflow trace, OpenTelemetry spans, Prometheus
metrics and the JSONL line all show the same numbers. Sinks treat it as read-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from configurable_agents.names import Tag
from configurable_agents.observability.capture.records import WorkflowRecord
from configurable_agents.observability.facts.assemble import AssembleOptions, CallFacts, RunPlan


@dataclass(slots=True)
class WorkflowFacts:
    """The facts of one root invocation.

    ``plan`` is the parent run (ADR-011 params, metrics, tags, artifacts) with one nested
    plan per node; each plan's ``calls`` holds the :class:`CallFacts` of the model calls
    made directly in it. ``record`` is the raw tree with the real start and end times of
    every node, model call and tool call (span builders need them); its message and
    state references are *not* redacted: use ``options.redact`` before exporting content.
    """

    record: WorkflowRecord
    plan: RunPlan
    options: AssembleOptions
    experiment: str  # the MLflow experiment name, tenant template resolved
    # Not kept by sampling (observability.sampling): sinks count it, MLflow folds it into a
    # rollup run instead of writing its runs and trace.
    sampled_out: bool = False

    @property
    def langchain_run_id(self) -> str:
        return str(self.record.run_id)

    @property
    def workflow_name(self) -> str:
        return self.record.name

    @property
    def workflow_version(self) -> str | None:
        return self.record.version

    @property
    def status(self) -> str:
        """FINISHED, FAILED, KILLED or INTERRUPTED: what happened, as the status tag says."""
        return self.plan.tags.get(Tag.STATUS, self.plan.status)

    def model_calls(self) -> Iterator[tuple[RunPlan, CallFacts]]:
        """Every model call once, with the plan it was made in (the parent for direct calls).

        The parent plan's ``calls`` holds *all* of the workflow's calls (its totals), so
        only the calls made outside any node are attributed to it here.
        """
        direct = self.record.direct
        if direct is not None:
            direct_calls = {id(call) for call in direct.llm_calls}
            for facts in self.plan.calls:
                if id(facts.call) in direct_calls:
                    yield self.plan, facts
        for plan in self.plan.walk():
            if plan is not self.plan:
                for facts in plan.calls:
                    yield plan, facts
