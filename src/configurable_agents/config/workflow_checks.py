"""Cross-reference checks of a field-valid workflow, each problem with its location.

A prompt naming an unknown state field, an edge to an unknown node, a node that can
never run or never finish, a cycle, two parallel nodes writing one field: every
problem carries a pydantic-style ``loc`` (``nodes.1.prompt``) and a message naming
the node, so the loader can report ``file:line: path: message``.

Every graph walk here is iterative: a workflow of any length is checked without
touching Python's recursion limit.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from configurable_agents.config.workflow_sections import (
    END,
    IDENTIFIER,
    START,
    EdgeConfig,
    NodeConfig,
    StateSchema,
)

__all__ = [
    "Problem",
    "WorkflowReferenceError",
    "find_cycle",
    "find_reference_problems",
    "template_fields",
]

_STATE_REF = re.compile(r"\{state\.([^{}]*)\}")
_BARE_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Problem:
    """A cross-reference error: where it is (pydantic-style loc) and what is wrong."""

    loc: tuple[str | int, ...]
    message: str


class WorkflowReferenceError(ValueError):
    """Raised by :class:`WorkflowConfig` validation; carries every problem with its loc."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, p.loc))}: {p.message}" for p in problems))


def template_fields(template: str) -> list[str]:
    """The state field names a template reads (``{state.topic}`` -> ``topic``)."""
    return [m.group(1) for m in _STATE_REF.finditer(template)]


def _hint(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _node_problems(state: StateSchema, nodes: Sequence[NodeConfig]) -> list[Problem]:
    from configurable_agents.runtime.tools import available_tools  # runtime imports config

    fields = list(state.fields)
    known_tools = available_tools()
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        where = f"node '{node.id}'"
        if node.id in seen:
            problems.append(Problem(("nodes", i, "id"), f"{where} is defined twice"))
        seen.add(node.id)
        for ref in template_fields(node.prompt):
            if not IDENTIFIER.match(ref):
                problems.append(
                    Problem(
                        ("nodes", i, "prompt"),
                        f"{where}: '{{state.{ref}}}' is not a field reference",
                    )
                )
            elif ref not in state.fields:
                problems.append(
                    Problem(
                        ("nodes", i, "prompt"),
                        f"{where}: prompt references unknown state field '{ref}'"
                        f"{_hint(ref, fields)}; state fields: {', '.join(fields)}",
                    )
                )
        for ref in _BARE_REF.findall(node.prompt):
            if ref in state.fields:
                problems.append(
                    Problem(
                        ("nodes", i, "prompt"),
                        f"{where}: prompt uses '{{{ref}}}'; write '{{state.{ref}}}' to insert the "
                        "state field",
                    )
                )
        for j, out in enumerate(node.outputs):
            if out not in state.fields:
                problems.append(
                    Problem(
                        ("nodes", i, "outputs", j),
                        f"{where}: output '{out}' is not a state field{_hint(out, fields)}; "
                        f"state fields: {', '.join(fields)}",
                    )
                )
        problems += _output_schema_problems(state, i, node)
        for j, name in enumerate(node.tools):
            if name not in known_tools:
                problems.append(
                    Problem(
                        ("nodes", i, "tools", j),
                        f"{where}: unknown tool '{name}'{_hint(name, known_tools)}; "
                        f"available tools: {', '.join(known_tools)}",
                    )
                )
    return problems


def _output_schema_problems(state: StateSchema, i: int, node: NodeConfig) -> list[Problem]:
    if node.output_schema is None:
        return []
    where = f"node '{node.id}'"
    problems = []
    declared = {f.name: f for f in node.output_schema.fields}
    for out in node.outputs:
        if out not in declared:
            problems.append(
                Problem(
                    ("nodes", i, "output_schema", "fields"),
                    f"{where}: output '{out}' has no field in output_schema",
                )
            )
    for j, field in enumerate(node.output_schema.fields):
        loc = ("nodes", i, "output_schema", "fields", j)
        if field.name not in node.outputs:
            problems.append(
                Problem(
                    loc,
                    f"{where}: output_schema field '{field.name}' is not "
                    f"listed in outputs {node.outputs}",
                )
            )
            continue
        state_field = state.fields.get(field.name)
        if state_field is not None and state_field.type != field.type:
            problems.append(
                Problem(
                    loc,
                    f"{where}: output_schema field '{field.name}' is "
                    f"{field.type} but state field is {state_field.type}",
                )
            )
    return problems


def _edge_problems(nodes: Sequence[NodeConfig], edges: Sequence[EdgeConfig]) -> list[Problem]:
    ids = [n.id for n in nodes]
    problems: list[Problem] = []
    for i, edge in enumerate(edges):
        for key, names, bad in (("from", edge.sources, END), ("to", edge.targets, START)):
            for name in names:
                if name == bad:
                    problems.append(
                        Problem(
                            ("edges", i, key),
                            f"edge {key} '{name}': {bad} cannot be an edge's {key}",
                        )
                    )
                elif name not in ids and name not in (START, END):
                    problems.append(
                        Problem(
                            ("edges", i, key),
                            f"edge {key} unknown node '{name}'{_hint(name, ids)}; "
                            f"nodes: {', '.join(ids)} (and START, END)",
                        )
                    )
    return problems


def _graph_problems(nodes: Sequence[NodeConfig], edges: Sequence[EdgeConfig]) -> list[Problem]:
    """Reachability, termination, cycles and parallel writes to one field."""
    succ: dict[str, set[str]] = {n.id: set() for n in nodes} | {START: set(), END: set()}
    for edge in edges:
        for s in edge.sources:
            succ[s].update(edge.targets)
    pred: dict[str, set[str]] = {k: set() for k in succ}
    for s, targets in succ.items():
        for t in targets:
            pred[t].add(s)
    problems: list[Problem] = []
    index = {n.id: i for i, n in enumerate(nodes)}
    reached = _walk(START, succ)
    finishing = _walk(END, pred)
    for node in nodes:
        if node.id not in reached:
            problems.append(
                Problem(
                    ("nodes", index[node.id], "id"),
                    f"node '{node.id}' is never reached from START; add an edge to it",
                )
            )
        elif node.id not in finishing:
            problems.append(
                Problem(
                    ("nodes", index[node.id], "id"),
                    f"node '{node.id}' has no path to END; add an edge from it",
                )
            )
    cycle = find_cycle(succ)
    if cycle:
        problems.append(
            Problem(
                ("edges",),
                "edges form a cycle: "
                + " -> ".join(cycle)
                + "; loops need conditional routing, which v0.1 does not have",
            )
        )
    outputs = {n.id: set(n.outputs) for n in nodes}
    for source, targets in succ.items():
        siblings = sorted(t for t in targets if t in outputs)
        for a_i, a in enumerate(siblings):
            for b in siblings[a_i + 1 :]:
                clash = sorted(outputs[a] & outputs[b])
                if clash:
                    problems.append(
                        Problem(
                            ("nodes", index[b], "outputs"),
                            f"nodes '{a}' and '{b}' both follow '{source}' and run in parallel, "
                            f"but both write state field '{clash[0]}'",
                        )
                    )
    return problems


def _walk(start: str, graph: Mapping[str, set[str]]) -> set[str]:
    seen, stack = {start}, [start]
    while stack:
        for nxt in graph[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def find_cycle(succ: Mapping[str, set[str]]) -> list[str] | None:
    """The first cycle a depth-first walk meets (``a -> b -> a``), or None.

    Nodes and successors are visited in sorted order, so the answer is stable. The
    walk keeps its own stack instead of recursing: a chain of thousands of nodes
    must not hit Python's recursion limit.
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in sorted(succ):
        if root in state:
            continue
        state[root] = 1
        path = [root]
        pending = [iter(sorted(succ[root]))]
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                pending.pop()
                state[path.pop()] = 2
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                pending.append(iter(sorted(succ[nxt])))
    return None


def find_reference_problems(
    state: StateSchema, nodes: Sequence[NodeConfig], edges: Sequence[EdgeConfig]
) -> list[Problem]:
    """Every cross-reference error of field-valid sections (empty when they are sound)."""
    problems = _node_problems(state, nodes) + _edge_problems(nodes, edges)
    if not problems:  # graph checks assume every name resolves
        problems = _graph_problems(nodes, edges)
    return problems
