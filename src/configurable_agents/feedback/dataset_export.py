"""Production workflows -> evaluation cases: a bad answer in production becomes a test case.

Selects parent runs of an experiment (an MLflow filter, and/or feedback on their traces such
as ``thumbs_up=false``) and writes one JSON Lines case per run, in the format ``eval
--dataset`` reads: ``id``, ``inputs`` (the trace's root inputs, already redacted when they
were logged), ``expected`` (from an expectation or label assessment named by
``expected_from``, else null for a person to fill in) and, for the person editing the file,
the ``output`` the workflow produced and where the case came from (``source``). ``eval``
ignores the extra fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from configurable_agents.feedback.values import FeedbackError, FeedbackValue, parse_value
from configurable_agents.names import Kind, Tag

_EXPECTATION = "expected_response"  # the expectation name MLflow's built-in judges read
MAX_RUNS = 10_000


@dataclass(frozen=True, slots=True)
class FeedbackMatch:
    """``NAME=VALUE``: a valid feedback of that name on the trace has that value."""

    name: str
    value: FeedbackValue

    @classmethod
    def parse(cls, spec: str) -> FeedbackMatch:
        name, sep, value = spec.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise FeedbackError(f"--feedback {spec[:80]!r}: use NAME=VALUE, e.g. thumbs_up=false")
        return cls(name.strip(), parse_value(value))

    def matches(self, value: Any) -> bool:
        if isinstance(self.value, bool) or isinstance(value, bool):
            return isinstance(value, bool) and isinstance(self.value, bool) and (
                value is self.value)
        if isinstance(self.value, int | float) and isinstance(value, int | float):
            return float(value) == float(self.value)
        return str(value).strip().casefold() == str(self.value).casefold()


@dataclass(slots=True)
class Case:
    """One exported case (a JSON Lines row)."""

    id: str
    inputs: dict[str, Any]
    expected: Any
    output: Any
    source: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "inputs": self.inputs, "expected": self.expected,
                "output": self.output, "source": self.source}


def _feedback_values(info: Any) -> dict[str, list[Any]]:
    from mlflow.entities import Expectation, Feedback

    values: dict[str, list[Any]] = {}
    for assessment in info.assessments or []:
        if assessment.valid is False:
            continue
        if isinstance(assessment, Feedback | Expectation):
            values.setdefault(assessment.name, []).append(assessment.value)
    return values


def _root_span(trace: Any) -> Any | None:
    return next((s for s in trace.data.spans if s.parent_id is None), None)


def _inputs(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {"input": value}
    if isinstance(value, Mapping) and value:
        return {str(k): v for k, v in value.items()}
    return {"input": value} if value not in (None, "", {}) else None


def select_cases(
    client: Any,
    tracing: Any,
    experiment_ids: Sequence[str],
    *,
    filter_string: str | None = None,
    feedback: Sequence[FeedbackMatch] = (),
    expected_from: str = _EXPECTATION,
    limit: int = 1000,
) -> Iterator[Case]:
    """The cases of the selected workflow runs, newest first, at most ``limit``."""
    clause = f"tags.`{Tag.KIND}` = '{Kind.WORKFLOW}'"
    where = f"{clause} AND {filter_string}" if filter_string else clause
    emitted = 0
    token = None
    while emitted < limit:
        page = client.search_runs(list(experiment_ids), filter_string=where,
                                  max_results=min(1000, MAX_RUNS), order_by=["start_time DESC"],
                                  page_token=token)
        for run in page:
            case = _case(client, tracing, run, feedback, expected_from)
            if case is not None:
                yield case
                emitted += 1
                if emitted >= limit:
                    return
        token = page.token
        if not token:
            return


def _case(client: Any, tracing: Any, run: Any, feedback: Sequence[FeedbackMatch],
          expected_from: str) -> Case | None:
    trace_id = run.data.tags.get(Tag.TRACE_ID)
    if not trace_id:
        return None
    trace = tracing.get_trace(trace_id)
    if trace is None:
        return None
    values = _feedback_values(trace.info)
    if any(not any(m.matches(v) for v in values.get(m.name, [])) for m in feedback):
        return None
    root = _root_span(trace)
    inputs = _inputs(root.inputs if root is not None else None)
    if inputs is None:
        return None
    expected = values.get(expected_from, [None])[-1]
    return Case(
        id=run.data.tags.get(Tag.LANGCHAIN_RUN_ID, run.info.run_id),
        inputs=inputs,
        expected=expected,
        output=root.outputs if root is not None else None,
        source={"run_id": run.info.run_id, "trace_id": trace_id,
                "feedback": {k: v[-1] for k, v in sorted(values.items())}},
    )


def to_mlflow_dataset(client: Any, name: str, experiment_id: str, cases: Sequence[Case]) -> str:
    """The cases as an MLflow evaluation dataset (inputs + expectations); its dataset id.

    MLflow's dataset entity writes its records through the process's tracking URI: the
    caller (the CLI) sets it to the store it read from.
    """
    entity = client.create_dataset(name=name, experiment_id=[experiment_id])
    records = [{"inputs": c.inputs,
                "expectations": {_EXPECTATION: c.expected} if c.expected is not None else {},
                "source": {"source_type": "TRACE", "source_data": {
                    "trace_id": c.source["trace_id"]}}}
               for c in cases]
    entity.merge_records(records)
    return str(entity.dataset_id)
