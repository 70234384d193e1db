"""What an online scorer reads from a finished workflow: its inputs and its answer, redacted.

Both come from the facts, never from the raw state: the parent plan's ``inputs.json`` /
``outputs.json`` artifacts are already redacted and size-bounded; with artifacts off, the
record's values are serialised and redacted the same way here. A judge is a third party:
nothing reaches it that would not reach MLflow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from configurable_agents.evaluation.runner import extract_output
from configurable_agents.names import Artifact
from configurable_agents.observability.facts.serialization import to_json_text
from configurable_agents.observability.facts.workflow_facts import WorkflowFacts


@dataclass(frozen=True, slots=True)
class Subject:
    inputs: dict[str, Any]
    output: Any


def _loaded(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _redacted_json(facts: WorkflowFacts, value: Any) -> Any:
    text = to_json_text(value)
    redact = facts.options.redact
    return _loaded(redact(text) if redact is not None else text)


def subject_of(facts: WorkflowFacts, output_key: str | None) -> Subject:
    """The redacted inputs and the answer to score (``output_key``, else the last field)."""
    artifacts = facts.plan.artifacts
    if Artifact.OUTPUTS in artifacts:
        inputs = _loaded(artifacts.get(Artifact.INPUTS))
        outputs = _loaded(artifacts[Artifact.OUTPUTS])
    else:
        inputs = _redacted_json(facts, facts.record.inputs)
        outputs = _redacted_json(facts, facts.record.outputs)
    if not isinstance(inputs, dict):
        inputs = {"input": inputs}
    if isinstance(outputs, Mapping) and output_key is None and "messages" not in outputs:
        output = list(outputs.values())[-1] if outputs else None
    else:
        output = extract_output(outputs, output_key)
    if isinstance(output, Mapping) and "content" in output and "type" in output:
        output = output["content"]  # a serialised message
    return Subject(inputs=inputs, output=output)
