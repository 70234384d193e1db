"""The small built-in tool registry that workflow nodes name in ``tools: [...]``.

Every built-in tool is offline and deterministic, so examples, the demo and the
tests run without network or keys. Real tools are added with
:func:`register_tool`; a workflow file can only name registered tools, and the
schema check lists the available ones when it meets an unknown name.
"""

from __future__ import annotations

import ast
import hashlib
import operator
from collections.abc import Callable

from langchain_core.tools import BaseTool, tool

_BIN_OPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY_OPS: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_SNIPPETS = (
    "Recent surveys show adoption growing steadily year over year.",
    "Experts point to cost and reliability as the main open questions.",
    "Several open-source projects have made the topic far easier to try.",
    "Early production users report measurable gains after a few months.",
    "Regulators have started to publish guidance on responsible use.",
    "Benchmarks vary widely, so results depend on the workload.",
)


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN_OPS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ValueError("exponent too large")
        return _BIN_OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPS:
        return _UNARY_OPS[type(node.op)](_evaluate(node.operand))
    raise ValueError(f"unsupported expression element: {type(node).__name__}")


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as '(12 + 30) * 2' and return the result."""
    try:
        value = _evaluate(ast.parse(expression, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError) as exc:
        return f"error: cannot evaluate {expression!r}: {exc}"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


@tool
def web_search(query: str) -> str:
    """Search the web for a query and return short result snippets (offline demo stub)."""
    digest = hashlib.sha256(query.encode("utf-8")).digest()
    picks = [_SNIPPETS[b % len(_SNIPPETS)] for b in digest[:3]]
    lines = [f"{i}. {query.strip()[:80]}: {text}" for i, text in enumerate(picks, start=1)]
    return "Search results (offline demo data):\n" + "\n".join(lines)


@tool
def word_count(text: str) -> str:
    """Count the words in a text."""
    return str(len(text.split()))


_REGISTRY: dict[str, BaseTool] = {t.name: t for t in (calculator, web_search, word_count)}


def register_tool(new_tool: BaseTool) -> None:
    """Make ``new_tool`` available to workflow files under its ``name``."""
    _REGISTRY[new_tool.name] = new_tool


def available_tools() -> list[str]:
    """Names a workflow file may use in a node's ``tools`` list."""
    return sorted(_REGISTRY)


def get_tools(names: list[str]) -> list[BaseTool]:
    """The registered tools for ``names`` (KeyError names the first unknown one)."""
    missing = [n for n in names if n not in _REGISTRY]
    if missing:
        raise KeyError(
            f"unknown tool '{missing[0]}'; available tools: {', '.join(available_tools())}"
        )
    return [_REGISTRY[n] for n in names]
