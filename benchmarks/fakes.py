"""Stateless fake chat models that report usage, for the benchmark workloads.

Copied in spirit from ``tests/fakes.py`` (benchmarks never import from ``tests/``), with
one difference that matters here: these models keep no iterator state, so one instance
can serve a 10-way parallel fan-out and 10,000 invocations without locking or growing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

DEFAULT_MODEL = "gemini-2.5-flash"


def usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


class UsageFakeChatModel(BaseChatModel):
    """Answers ``text`` with the given usage; streams word by word, usage in the last chunk."""

    text: str = "ok"
    input_tokens: int = 100
    output_tokens: int = 50
    model_name: str = DEFAULT_MODEL
    temperature: float | None = 0.7

    @property
    def _llm_type(self) -> str:
        return "benchmark-fake-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model_name, "temperature": self.temperature}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_model_name"] = self.model_name
        params["ls_provider"] = "google"
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        return params

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

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

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        message = self._reply(messages)
        for token in re.split(r"(\s)", str(message.content)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                chunk_position="last",
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
            )
        )


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
