"""LLM judge: any LangChain chat model grades an answer against the expected one.

Its calls run with the ``config`` the evaluation runner passes (a separate handler
and ``eval_role=judge`` metadata), so the judge's tokens and cost are logged as their
own runs and summed apart from the workflow's (``judge_cost_usd``).

The verdict must be *structured*: a JSON object ``{"verdict": "PASS"|"FAIL",
"rationale": "..."}`` (bare or in a code fence), or a last line ``VERDICT: PASS`` /
``VERDICT: FAIL``. Free text is never searched for a PASS or FAIL word ("does not pass
... FAIL" once read as PASS): a reply without a structured verdict is *unscorable*,
scores 0, and is counted apart (``unscorable_count``), never taken as an answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from configurable_agents.scoring.example import Example
from configurable_agents.scoring.scorers import Score

DEFAULT_CRITERIA = (
    "The answer is correct if it states the same fact or value as the expected answer; "
    "wording, extra explanation and formatting do not matter."
)
SYSTEM = (
    "You grade answers. Reply with exactly one JSON object and nothing else: "
    '{"verdict": "PASS" or "FAIL", "rationale": "one short sentence saying why"}.'
)
VERDICTS = ("PASS", "FAIL")
_FENCE = re.compile(r"^```(?:json)?\s*(?P<body>.*?)\s*```$", re.DOTALL | re.IGNORECASE)
_LAST_LINE = re.compile(r"^(?i:verdict):\s*(?P<verdict>PASS|FAIL)\s*$")
_MAX_REPLY = 20_000  # a longer reply is not parsed as JSON (bounded work on model output)


def parse_verdict(text: str) -> tuple[str, str] | None:
    """``(verdict, rationale)`` from a structured reply, or None when there is none."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced["body"].strip()
    if body.startswith("{") and len(body) <= _MAX_REPLY:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            return None
        if not isinstance(data, dict):
            return None
        verdict, rationale = data.get("verdict"), data.get("rationale", "")
        if verdict not in VERDICTS or not isinstance(rationale, str):
            return None
        return verdict, rationale.strip()
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if not lines:
        return None
    found = _LAST_LINE.match(lines[-1])
    if found is None:
        return None
    return found["verdict"], " ".join(lines[:-1])


@dataclass
class LLMJudge:
    """Grades with ``model``: PASS scores 1, FAIL 0; an unstructured reply is unscorable."""

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
                'Reply with {"verdict": "PASS" or "FAIL", "rationale": "..."}:'
            ),
        ]

    def score(self, example: Example, output: Any, config: dict[str, Any]) -> Score:
        reply = self.model.invoke(self.prompt(example, output), config=config)
        text = reply.text if isinstance(reply.text, str) else str(reply.content)
        parsed = parse_verdict(text)
        if parsed is None:
            return Score(0.0, f"no structured verdict in the judge's reply: {text[:200]}",
                         unscorable=True)
        verdict, rationale = parsed
        return Score(1.0 if verdict == "PASS" else 0.0, rationale[:500])
