"""Deterministic question answering for the offline demo model.

The demo QA dataset (``examples/qa_dataset.jsonl``) needs a model whose accuracy
depends on the prompt the way a real small model's does, so that the two workflow
versions differ in both cost and quality:

- a prompt that asks to *think step by step* gets a worked answer (long: costs more)
  and arithmetic evaluated with the usual operator precedence;
- a prompt that asks for *the answer only* gets a one-line answer (cheap), and mixed
  arithmetic evaluated left to right, the classic shortcut error of a model that
  does not reason before answering.

Facts come from a small table; a question it does not cover gets "I don't know".
"""

from __future__ import annotations

import ast
import operator
import re

QUESTION_MARKER = "Question:"
_STEP_BY_STEP = re.compile(r"step by step", re.IGNORECASE)
_ARITHMETIC = re.compile(r"(\d+(?:\s*[-+*/]\s*\d+)+)")
_TOKEN = re.compile(r"\d+|[-+*/]")

# (keywords that must all appear in the lower-cased question, answer)
FACTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("capital", "france"), "Paris"),
    (("capital", "japan"), "Tokyo"),
    (("capital", "canada"), "Ottawa"),
    (("capital", "australia"), "Canberra"),
    (("largest planet",), "Jupiter"),
    (("red planet",), "Mars"),
    (("chemical symbol", "gold"), "Au"),
    (("chemical symbol", "sodium"), "Na"),
    (("boiling point", "water", "celsius"), "100"),
    (("wrote", "hamlet"), "William Shakespeare"),
    (("painted", "mona lisa"), "Leonardo da Vinci"),
    (("days", "leap year"), "366"),
    (("continents",), "7"),
    (("largest ocean",), "Pacific"),
    (("hardest natural", "substance"), "Diamond"),
)

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def question_in(prompt: str) -> str | None:
    """The text after the last ``Question:`` marker, or None when the prompt has none."""
    at = prompt.rfind(QUESTION_MARKER)
    if at < 0:
        return None
    return prompt[at + len(QUESTION_MARKER) :].strip().splitlines()[0].strip()


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("not arithmetic")


def _with_precedence(expression: str) -> float:
    return _evaluate(ast.parse(expression, mode="eval"))


def _left_to_right(expression: str) -> float:
    tokens = _TOKEN.findall(expression)
    total = float(tokens[0])
    for op, number in zip(tokens[1::2], tokens[2::2], strict=True):
        total = _OPS[{"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "/": ast.Div}[op]](
            total, float(number)
        )
    return total


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.2f}"


def _fact(question: str) -> str | None:
    lowered = question.lower()
    for keywords, answer in FACTS:
        if all(k in lowered for k in keywords):
            return answer
    return None


def answer(prompt: str) -> str | None:
    """The demo model's reply to a QA prompt, or None when the prompt asks no question."""
    question = question_in(prompt)
    if question is None:
        return None
    reasoned = bool(_STEP_BY_STEP.search(prompt))
    arithmetic = _ARITHMETIC.search(question)
    if arithmetic:
        expression = arithmetic.group(1)
        if reasoned:
            result = _number(_with_precedence(expression))
            return (
                f"The question asks for {expression}. Multiplication and division come "
                f"before addition and subtraction, so I evaluate those first and then "
                f"combine the remaining terms from left to right.\nAnswer: {result}"
            )
        return _number(_left_to_right(expression))
    fact = _fact(question)
    if fact is None:
        if reasoned:
            return (
                "I looked for this in what I know and could not find a reliable source, "
                "so I would rather not guess.\nAnswer: I don't know"
            )
        return "I don't know"
    if reasoned:
        return (
            "Let me recall the relevant fact and check it against what I know about the "
            "subject before answering, so the final line is the answer itself.\n"
            f"Answer: {fact}"
        )
    return fact
