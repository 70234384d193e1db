"""WorkflowFacts from real records (real LangChain messages and results), for the otel sink tests.

Builds what the pipeline builds: a WorkflowRecord tree with real start/end times, built
by the real build_facts with the real PriceBook.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from configurable_agents.observability.capture.records import (
    LLMCallRecord,
    NodeRecord,
    ToolCallRecord,
    WorkflowRecord,
)
from configurable_agents.observability.facts.build import FactOptions, build_facts
from configurable_agents.observability.facts.cost_estimator import PriceBook
from configurable_agents.observability.facts.model import WorkflowFacts
from configurable_agents.testing import usage

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def model_call(
    start_ns: int, input_tokens: int, output_tokens: int, *, text: str = "answer",
    model: str = "gemini-2.5-flash", prompt: str = "question", **usage_details: Any,
) -> LLMCallRecord:
    message = AIMessage(
        text,
        usage_metadata=usage(input_tokens, output_tokens, **usage_details),  # type: ignore[arg-type]
        response_metadata={"model_name": f"{model}-001", "finish_reason": "STOP"},
    )
    return LLMCallRecord(
        run_id=uuid.uuid4(),
        start_ns=start_ns,
        end_ns=start_ns + 20 * MS,
        messages=[[HumanMessage(prompt)]],
        invocation_params={"model": model, "temperature": 0.2},
        metadata={"ls_model_name": model, "ls_provider": "google_genai"},
        response=LLMResult(generations=[[ChatGeneration(message=message)]]),
    )


def two_node_record(thread_id: str = "thread-7") -> WorkflowRecord:
    """plan (1 model call) -> act (subgraph node with a model call and a tool call)."""
    plan = NodeRecord("plan", uuid.uuid4(), T0 + 1 * MS, step=1, end_ns=T0 + 30 * MS,
                      status="FINISHED")
    plan.llm_calls.append(model_call(T0 + 2 * MS, 100, 40,
                                     input_token_details={"cache_read": 30},
                                     output_token_details={"reasoning": 10}))
    act = NodeRecord("act", uuid.uuid4(), T0 + 31 * MS, step=2, end_ns=T0 + 90 * MS,
                     status="FINISHED")
    inner = NodeRecord("inner", uuid.uuid4(), T0 + 32 * MS, step=1, end_ns=T0 + 80 * MS,
                       status="FINISHED")
    inner.llm_calls.append(model_call(T0 + 33 * MS, 200, 60, prompt="my email is a@b.com"))
    inner.tool_calls.append(ToolCallRecord(uuid.uuid4(), "search", T0 + 60 * MS,
                                           input={"query": "x"}, output="found",
                                           end_ns=T0 + 70 * MS))
    act.children.append(inner)
    return WorkflowRecord(
        run_id=uuid.uuid4(), start_ns=T0, end_ns=T0 + 100 * MS, name="planner",
        version="3", kind="graph", metadata={"thread_id": thread_id, "user_id": "u1"},
        tags=[], status="FINISHED", nodes=[plan, act],
    )


def facts_for(record: WorkflowRecord, redact: Callable[[str], str] | None = None) -> WorkflowFacts:
    return build_facts(record, FactOptions(redact=redact), PriceBook())
