"""Stateless fake chat models that report usage, for the benchmark workloads.

The provider-like reporting comes from ``configurable_agents.testing``, as in
``tests/fakes.py``; the difference that matters here: these models keep no iterator state,
so one instance can serve a 10-way parallel fan-out and 10,000 invocations without locking
or growing.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from configurable_agents.testing import DEFAULT_MODEL, UsageReportingChatModel, usage


class UsageFakeChatModel(UsageReportingChatModel):
    """Answers ``text`` with the given usage; streams word by word, usage in the last chunk."""

    text: str = "ok"
    input_tokens: int = 100
    output_tokens: int = 50
    model_name: str = DEFAULT_MODEL

    @property
    def _llm_type(self) -> str:
        return "benchmark-fake-chat"

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(
            self.text,
            usage_metadata=usage(self.input_tokens, self.output_tokens),  # type: ignore[arg-type]
            response_metadata={"model_name": self.model_name},
        )

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])


class ToolCallingFakeModel(UsageFakeChatModel):
    """Calls ``tool_name`` ``calls`` times (one call per turn, counted from the history), then
    answers: the shape of a ReAct agent's model."""

    tool_name: str = "search"
    calls: int = 5

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        done = sum(isinstance(m, ToolMessage) for m in messages)
        if done >= self.calls:
            return AIMessage(
                "final answer",
                usage_metadata=usage(120 + 10 * done, 30),  # type: ignore[arg-type]
                response_metadata={"model_name": self.model_name},
            )
        return AIMessage(
            "",
            tool_calls=[
                {
                    "name": self.tool_name,
                    "args": {"query": f"q{done}"},
                    "id": f"call_{done}",
                    "type": "tool_call",
                }
            ],
            usage_metadata=usage(80 + 10 * done, 20),  # type: ignore[arg-type]
            response_metadata={"model_name": self.model_name},
        )
