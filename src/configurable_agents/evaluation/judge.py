"""LLM judge: any LangChain chat model grades an answer against the expected one.

Its calls run with the ``config`` the evaluation runner passes (a separate handler
and ``eval_role=judge`` metadata), so the judge's tokens and cost are logged as their
own runs and summed apart from the workflow's (``judge_cost_usd``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from configurable_agents.evaluation.dataset import Example
from configurable_agents.evaluation.scorers import Score

DEFAULT_CRITERIA = (
    "The answer is correct if it states the same fact or value as the expected answer; "
    "wording, extra explanation and formatting do not matter."
)
SYSTEM = (
    "You grade answers. Reply with PASS or FAIL on the first line, then one short "
    "sentence saying why."
)
_VERDICT = re.compile(r"\b(PASS|FAIL)\b", re.IGNORECASE)


@dataclass
class LLMJudge:
    """Grades with ``model``; PASS scores 1, FAIL (or an unreadable verdict) scores 0."""

    model: BaseChatModel
    criteria: str = DEFAULT_CRITERIA
    name: str = "llm_judge"
    uses_model: bool = field(default=True, init=False)

    def prompt(self, example: Example, output: Any) -> list[Any]:
        return [
            SystemMessage(SYSTEM),
            HumanMessage(
                f"Criteria: {self.criteria}\n\nInputs: {example.inputs}\n\n"
                f"Expected answer: {example.expected}\n\nAnswer to grade: {output}\n\n"
                "Verdict (PASS or FAIL):"
            ),
        ]

    def score(self, example: Example, output: Any, config: dict[str, Any]) -> Score:
        reply = self.model.invoke(self.prompt(example, output), config=config)
        text = reply.text if isinstance(reply.text, str) else str(reply.content)
        found = _VERDICT.search(text)
        if found is None:
            return Score(0.0, f"no PASS/FAIL verdict in the judge's reply: {text[:200]}")
        rationale = text[found.end():].strip(" :.-\n")[:500]
        return Score(1.0 if found.group(1).upper() == "PASS" else 0.0, rationale)
