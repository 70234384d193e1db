"""What an online scorer reads from a finished workflow: its inputs and its answer, redacted.

Both come from the facts (``WorkflowFacts.inputs`` / ``.outputs``: JSON-able and redacted once
at the facts boundary), never from the raw state: a judge is a third party, and nothing
reaches it that would not reach MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from configurable_agents.observability.facts.model import WorkflowFacts
from configurable_agents.scoring import extract_output


@dataclass(frozen=True, slots=True)
class Subject:
    inputs: dict[str, Any]
    output: Any


def subject_of(facts: WorkflowFacts, output_key: str | None) -> Subject:
    """The redacted inputs and the answer to score (``output_key``, else the last field)."""
    inputs = facts.inputs
    if not isinstance(inputs, Mapping):
        inputs = {"input": inputs}
    outputs = facts.outputs
    if isinstance(outputs, Mapping) and output_key is None and "messages" not in outputs:
        output = list(outputs.values())[-1] if outputs else None
    else:
        output = extract_output(outputs, output_key)
    if isinstance(output, Mapping) and "content" in output and (
        "type" in output or "role" in output
    ):
        output = output["content"]  # a serialised message: LangChain's or OpenAI's shape
    return Subject(inputs={str(k): v for k, v in inputs.items()}, output=output)
