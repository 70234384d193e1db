"""langchain-core fake chat models that report realistic usage (no mocks of LangChain)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool


def usage(input_tokens: int, output_tokens: int, **details: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    data.update(details)
    return data


def reply(
    text: str,
    input_tokens: int = 100,
    output_tokens: int = 50,
    model: str = "gemini-2.5-flash",
    **kwargs: Any,
) -> AIMessage:
    return AIMessage(
        text,
        usage_metadata=usage(input_tokens, output_tokens),
        response_metadata={"model_name": model},
        **kwargs,
    )


class UsageChatModel(GenericFakeChatModel):
    """GenericFakeChatModel with a model name (``ls_model_name``) and tool binding."""

    model_name: str = "gemini-2.5-flash"
    temperature: float | None = 0.7
    stream_usage: bool = True

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_model_name"] = self.model_name
        params["ls_provider"] = "google"
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        return params

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model_name, "temperature": self.temperature}

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        """Stream word by word; like OpenAI with stream_usage, usage comes once at the end."""
        message = self._generate(messages, stop=stop, **kwargs).generations[0].message
        for token in re.split(r"(\s)", str(message.content)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token, id=message.id))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        if self.stream_usage:
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    id=message.id,
                    chunk_position="last",
                    usage_metadata=getattr(message, "usage_metadata", None),
                    response_metadata=getattr(message, "response_metadata", {}),
                )
            )


def repeating(
    text: str = "ok",
    input_tokens: int = 100,
    output_tokens: int = 50,
    model: str = "gemini-2.5-flash",
) -> UsageChatModel:
    """A model answering ``text`` forever with the given usage."""
    messages = (reply(text, input_tokens, output_tokens, model) for _ in itertools.count())
    return UsageChatModel(messages=messages, model_name=model)


class ScriptedToolModel(UsageChatModel):
    """Calls ``tool_name`` ``calls`` times (one call per turn), then answers."""

    tool_name: str = "search"
    calls: int = 2
    messages: Iterator[AIMessage] = iter(())

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        done = sum(isinstance(m, ToolMessage) for m in messages)
        if done < self.calls:
            message = AIMessage(
                "",
                tool_calls=[
                    {
                        "name": self.tool_name,
                        "args": {"query": f"q{done}"},
                        "id": f"call_{done}",
                        "type": "tool_call",
                    }
                ],
                usage_metadata=usage(80 + done, 20),
                response_metadata={"model_name": self.model_name},
            )
        else:
            message = reply("final answer", 120, 30, self.model_name)
        return ChatResult(generations=[ChatGeneration(message=message)])


def flaky(fail_times: int, error: type[Exception] = RuntimeError) -> Callable[[], None]:
    """A callable that raises ``fail_times`` times, then succeeds (counts per instance)."""
    state = {"n": 0}

    def call() -> None:
        state["n"] += 1
        if state["n"] <= fail_times:
            raise error(f"transient failure {state['n']}")

    return call
