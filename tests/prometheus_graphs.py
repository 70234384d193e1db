"""Real LangGraph graphs and a handler with the Prometheus sink, for the Prometheus tests.

``qa`` plans and answers with two model calls (the answer reports cache reads and
reasoning) and reruns a flaky node once per invocation (RetryPolicy); ``fail=True``
makes its last node raise. :class:`FactsRecorder` is a plain sink beside Prometheus
that keeps the facts the handler computed, so tests compare PromQL with them.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy

from configurable_agents.config.pipeline_config import PipelineConfig
from configurable_agents.config.prometheus_config import PrometheusConfig
from configurable_agents.config.schema import ObservabilityConfig
from configurable_agents.names import Metric
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.facts.model import WorkflowFacts
from configurable_agents.observability.sinks.base import Sink
from tests.fakes import UsageChatModel, repeating, usage

# Tokens of one qa invocation: plan 100/50, answer 300/80 (200 cache reads, 30 reasoning).
QA_INPUT_TOKENS = 400
QA_OUTPUT_TOKENS = 130


class State(TypedDict, total=False):
    question: str
    answer: str
    fail: bool


def _answering_model(model: str) -> UsageChatModel:
    def replies() -> Any:
        for _ in itertools.count():
            yield AIMessage(
                "final answer",
                usage_metadata=usage(  # type: ignore[arg-type]
                    300, 80,
                    input_token_details={"cache_read": 200},
                    output_token_details={"reasoning": 30},
                ),
                response_metadata={"model_name": model},
            )

    return UsageChatModel(messages=replies(), model_name=model)


def qa_graph(model: str = "gemini-2.5-flash") -> Any:
    """plan (model) -> check (fails its first attempt, retried) -> answer (model)."""
    planner = repeating("a plan", 100, 50, model)
    answerer = _answering_model(model)
    attempts = itertools.count()
    lock = threading.Lock()

    def plan(state: State, config: RunnableConfig) -> dict[str, Any]:
        return {"answer": str(planner.invoke([HumanMessage(state["question"])], config).content)}

    def check(state: State) -> dict[str, Any]:
        with lock:
            first_attempt = next(attempts) % 2 == 0
        if first_attempt:
            raise ConnectionError("transient")
        return {}

    def answer(state: State, config: RunnableConfig) -> dict[str, Any]:
        text = str(answerer.invoke([HumanMessage(state["answer"])], config).content)
        if state.get("fail"):
            raise ValueError("the answer failed validation")
        return {"answer": text}

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node(
        "check", check,
        retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False,
                                 retry_on=ConnectionError),
    )
    builder.add_node("answer", answer)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "check")
    builder.add_edge("check", "answer")
    builder.add_edge("answer", END)
    return builder.compile(name="qa")


class FactsRecorder(Sink):
    """Keeps every WorkflowFacts the pipeline hands it (what the handler computed)."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.facts: list[WorkflowFacts] = []
        self._lock = threading.Lock()

    def export(self, facts: WorkflowFacts) -> None:
        with self._lock:
            self.facts.append(facts)
        self.counters.add("exported")

    def totals(self, workflow_prefix: str) -> dict[str, float]:
        with self._lock:
            chosen = [f for f in self.facts if f.name.startswith(workflow_prefix)]
        return {
            Metric.TOTAL_INPUT_TOKENS: sum(f.totals.usage.input for f in chosen),
            Metric.TOTAL_OUTPUT_TOKENS: sum(f.totals.usage.output for f in chosen),
            Metric.TOTAL_COST_USD: sum(f.totals.cost_usd for f in chosen),
            Metric.RETRY_COUNT: sum(f.totals.retries for f in chosen),
        }


def fresh_process_metrics(monkeypatch: Any) -> None:
    """Forget the process's metric families, so this test's sink makes them anew.

    In an app one process keeps one set (its first sink's attribution labels); a test
    session runs many apps in one process.
    """
    from configurable_agents.observability.sinks.prometheus import sink

    monkeypatch.setattr(sink, "_default", None)


def prometheus_handler(
    recorder: Sink | None = None, *, pipeline: PipelineConfig | None = None, **prometheus: Any
) -> MLflowCallbackHandler:
    """A handler built from config with only the Prometheus sink on (MLflow off).

    These apps name each invocation in its metadata (``invoke(..., name)``), so the
    workflow label is allowed to come from metadata unless a test says otherwise.
    """
    prometheus.setdefault("metadata_workflow_names", True)
    config = ObservabilityConfig(pipeline=pipeline,
                                 prometheus=PrometheusConfig(enabled=True, **prometheus))
    return MLflowCallbackHandler(config, sinks=[recorder] if recorder is not None else [])


def invoke(graph: Any, handler: MLflowCallbackHandler, name: str, *, version: str = "1",
           fail: bool = False, **metadata: Any) -> None:
    """One invocation as an app makes it; a failing one raises its own error."""
    graph.invoke(
        {"question": "what is 2 + 2?", "fail": fail},
        config={"callbacks": [handler],
                "metadata": {"workflow_name": name, "workflow_version": version, **metadata}},
    )
