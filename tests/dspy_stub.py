"""A DSPy-aware reply for the loopback OpenAI stub, and the tiny QA task the DSPy tests share.

The stub answers in DSPy's ChatAdapter format (``[[ ## field ## ]]`` blocks) for
whatever output fields the request asks for. It answers *correctly* only when the
prompt carries few-shot demos (DSPy sends each demo as an extra user/assistant
pair), so a BootstrapFewShot run measurably improves the program: baseline 0%,
optimized 100%.
"""

from __future__ import annotations

import os
import re
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM: no fetch at import

import dspy

CAPITALS = {
    "France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin",
    "Japan": "Tokyo", "Egypt": "Cairo", "Peru": "Lima", "Kenya": "Nairobi",
}

# One OpenAI usage object per request: 20 of the 120 prompt tokens cached, 10 of
# the 30 completion tokens reasoning (gpt-4o: $2.50 / $1.25 cached / $10.00 per 1M).
USAGE = {
    "prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
    "prompt_tokens_details": {"cached_tokens": 20},
    "completion_tokens_details": {"reasoning_tokens": 10},
}
COST_PER_CALL = (100 * 2.50 + 20 * 1.25 + 30 * 10.00) / 1e6  # = 0.000575

_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]")
_COUNTRY = re.compile(r"capital of (\w+)")


def reply(body: dict[str, Any]) -> str:
    """The ChatAdapter-formatted answer to one chat-completions request body."""
    messages = body.get("messages") or []
    last = str(messages[-1].get("content") if messages else "")
    fields = [f for f in dict.fromkeys(_FIELD.findall(last)) if f != "completed"]
    country = _COUNTRY.findall(last)
    with_demos = len(messages) > 2
    answer = CAPITALS.get(country[-1], "unknown") if country and with_demos else "unknown"
    blocks = []
    for field in fields or ["answer"]:
        value = answer if field == "answer" else "Recall the capital."
        blocks.append(f"[[ ## {field} ## ]]\n{value}")
    return "\n\n".join([*blocks, "[[ ## completed ## ]]"])


def qa_examples(countries: list[str]) -> list[dspy.Example]:
    return [
        dspy.Example(question=f"What is the capital of {c}?", answer=CAPITALS[c]).with_inputs(
            "question"
        )
        for c in countries
    ]


def exact_answer(example: Any, prediction: Any, trace: Any = None) -> bool:
    return str(getattr(prediction, "answer", "")).strip() == example.answer


class CapitalQA(dspy.Module):
    """Two predictors, so a program call has nested runs: draft, then answer."""

    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict("question -> notes")
        self.answer = dspy.Predict("question, notes -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        notes = self.draft(question=question).notes
        return self.answer(question=question, notes=notes)
