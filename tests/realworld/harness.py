"""The invariants every real-world program is checked against, and the model it talks to.

A program from LangGraph / langchain-core / MLflow upstream runs with one
:class:`MLflowCallbackHandler` against a real sqlite MLflow store; :func:`check`
then reads MLflow and asserts what a user relies on: one parent run per top-level
call, one nested run per executed node, the statuses and tags that say what
happened, tokens and cost equal to what the model reported, nothing left RUNNING,
each parent linked to its MLflow trace, nothing left in the spool, and no internal
error of ours. The program itself asserts that its return values
and exceptions are what they are without the handler.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from pydantic import Field, PrivateAttr

from configurable_agents.names import Kind, Metric, Param, Status, Tag
from configurable_agents.observability import MLflowCallbackHandler
from tests.fakes import UsageChatModel, reply, usage
from tests.test_handler_shapes import make_handler

# gemini-2.5-flash list prices (USD per token): what the fakes' usage costs.
INPUT_PRICE = 0.30 / 1e6
OUTPUT_PRICE = 2.50 / 1e6


class ReportingModel(UsageChatModel):
    """A fake chat model that remembers the usage it reported, call by call (thread-safe).

    ``script`` answers in turn (then repeats the last); an AIMessage in it is sent as is
    (tool calls included), a string becomes a reply with ``input_tokens`` / ``output_tokens``.
    """

    script: list[Any] = Field(default_factory=lambda: ["ok"])
    input_tokens: int = 40
    output_tokens: int = 10
    messages: Iterator[AIMessage] = iter(())
    _reported: list[dict[str, int]] = PrivateAttr(default_factory=list)
    _turn: Iterator[int] = PrivateAttr(default_factory=itertools.count)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        with self._lock:
            turn = next(self._turn)
            item = self.script[min(turn, len(self.script) - 1)]
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, AIMessage):
                message = item.model_copy()
            else:
                message = reply(str(item), self.input_tokens, self.output_tokens, self.model_name)
            usage = message.usage_metadata or {}
            self._reported.append(
                {"input": usage.get("input_tokens", 0), "output": usage.get("output_tokens", 0)}
            )
        return ChatResult(generations=[ChatGeneration(message=message)])

    @property
    def reported(self) -> tuple[int, int]:
        """(input, output) tokens this model reported so far."""
        with self._lock:
            return (
                sum(u["input"] for u in self._reported),
                sum(u["output"] for u in self._reported),
            )


def tool_call(
    tool: str, args: dict[str, Any], call_id: str, input_tokens: int = 30, output_tokens: int = 5,
    **kwargs: Any,
) -> AIMessage:
    """A model turn asking for one tool call, with usage as a provider reports it."""
    return AIMessage(
        "",
        tool_calls=[{"name": tool, "args": args, "id": call_id, "type": "tool_call"}],
        usage_metadata=usage(input_tokens, output_tokens),
        response_metadata={"model_name": "gemini-2.5-flash"},
        **kwargs,
    )


class Failing(UsageChatModel):
    """A provider that is down: every call raises (a primary to fall back from)."""

    messages: Iterator[AIMessage] = iter(())

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise ConnectionError("primary provider down")


@dataclass
class Logged:
    """What MLflow holds after the program ran: parents and their nested runs."""

    parents: list[Run]
    nodes: list[Run]
    handler: MLflowCallbackHandler
    children_of: dict[str, list[Run]] = field(default_factory=dict)
    traces: dict[str, str] = field(default_factory=dict)  # trace id -> its source run id

    def nested(self, parent: Run) -> list[Run]:
        """Every nested run under ``parent``, subgraph nodes included (depth first)."""
        out: list[Run] = []
        for child in self.children_of.get(parent.info.run_id, []):
            out.append(child)
            out.extend(self.nested(child))
        return out

    def node_ids(self, parent: Run) -> list[str]:
        """Node ids of every nested run under ``parent``, sorted."""
        return sorted(r.data.params[Param.NODE_ID] for r in self.nested(parent))

    @property
    def parent(self) -> Run:
        assert len(self.parents) == 1, [p.info.run_name for p in self.parents]
        return self.parents[0]


_SPOOLS: dict[int, Path] = {}


def handler_for(store: str, experiment: str, **kwargs: Any) -> MLflowCallbackHandler:
    """A handler with its own spool folder, so :func:`check` can see it stayed empty."""
    spool = Path(tempfile.mkdtemp(prefix="ca-realworld-spool-"))
    kwargs.setdefault("spool_dir", str(spool))
    handler = make_handler(store, experiment, **kwargs)
    _SPOOLS[id(handler)] = Path(kwargs["spool_dir"])
    return handler


def collect(client: MlflowClient, experiment: str, handler: MLflowCallbackHandler) -> Logged:
    assert handler.flush(60), handler.stats()
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, "nothing was logged"
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if r.data.tags.get(Tag.KIND) == Kind.WORKFLOW]
    nodes = [r for r in runs if r.data.tags.get(Tag.KIND) == Kind.NODE]
    children: dict[str, list[Run]] = {}
    for run in nodes:
        children.setdefault(run.data.tags[Tag.MLFLOW_PARENT_RUN_ID], []).append(run)
    traces = {
        t.info.trace_id: t.info.trace_metadata.get("mlflow.sourceRun", "")
        for t in client.search_traces(locations=[exp.experiment_id], max_results=5000)
    }
    return Logged(parents, nodes, handler, children, traces)


def check(
    client: MlflowClient,
    experiment: str,
    handler: MLflowCallbackHandler,
    *,
    calls: int,
    statuses: dict[str, int] | None = None,
    tokens: tuple[int, int] | None = None,
    cost: float | None = None,
) -> Logged:
    """Assert the invariants; ``statuses`` counts parents by status tag (default: all FINISHED).

    ``tokens`` are (input, output) summed over the parents; their cost is ``cost`` when
    given (real providers' list prices), else the fakes' gemini-2.5-flash price.
    """
    logged = collect(client, experiment, handler)
    assert len(logged.parents) == calls, "one parent run per top-level call"
    every = [*logged.parents, *logged.nodes]
    assert all(r.info.status != Status.RUNNING for r in every), "nothing left RUNNING"
    assert all(r.data.tags.get(Tag.STATUS) != Status.RUNNING for r in every)
    seen: dict[str, int] = {}
    for parent in logged.parents:
        tag = parent.data.tags[Tag.STATUS]
        seen[tag] = seen.get(tag, 0) + 1
        _check_parent(parent, logged.nested(parent))
        trace_id = parent.data.tags.get(Tag.TRACE_ID)
        assert logged.traces.get(trace_id or "") == parent.info.run_id, "trace linked"
    assert seen == (statuses or {Status.FINISHED: calls})
    if tokens is not None:
        got = (
            sum(p.data.metrics[Metric.TOTAL_INPUT_TOKENS] for p in logged.parents),
            sum(p.data.metrics[Metric.TOTAL_OUTPUT_TOKENS] for p in logged.parents),
        )
        assert got == tokens, "tokens equal what the model reported"
        logged_cost = sum(p.data.metrics[Metric.TOTAL_COST_USD] for p in logged.parents)
        if cost is None:
            cost = tokens[0] * INPUT_PRICE + tokens[1] * OUTPUT_PRICE
        # Each parent's total is rounded to 8 decimals (USD) when logged.
        slack = 5e-9 * len(logged.parents)
        assert logged_cost == pytest.approx(cost, rel=1e-9, abs=slack), "cost exact"
    stats = handler.stats()
    assert stats.internal_errors == 0 and stats.failed == 0 and stats.active_runs == 0, stats
    assert stats.spooled == 0 and stats.dropped == 0 and stats.pending_workflows == 0, stats
    spool = _SPOOLS.get(id(handler))
    assert spool is None or not any(spool.iterdir()), "spool empty"
    return logged


def _check_parent(parent: Run, nested: list[Run]) -> None:
    tags, metrics = parent.data.tags, parent.data.metrics
    status = tags[Tag.STATUS]
    expected_run_status = Status.FINISHED if status == Status.INTERRUPTED else status
    assert parent.info.status == expected_run_status
    assert metrics[Metric.STATUS] == (1 if expected_run_status == Status.FINISHED else 0)
    assert (tags.get(Tag.INTERRUPTED) == "true") == (status == Status.INTERRUPTED)
    assert (Tag.STOP_REASON in tags) == (status == Status.KILLED)
    assert (Tag.ERROR_TYPE in tags) == (status == Status.FAILED)
    # One nested run per executed node (subgraph nodes one level deeper), and they add up.
    assert metrics[Metric.NODE_COUNT] == len(nested)
    top = [r for r in nested if r.data.tags[Tag.MLFLOW_PARENT_RUN_ID] == parent.info.run_id]
    node_tokens = sum(r.data.metrics[Metric.INPUT_TOKENS] for r in top)
    assert node_tokens <= metrics[Metric.TOTAL_INPUT_TOKENS]
    if status == Status.FINISHED:
        assert all(r.data.tags[Tag.STATUS] == Status.FINISHED for r in nested), [
            (r.info.run_name, r.data.tags[Tag.STATUS]) for r in nested
        ]
