"""Offline chat models that report what real providers report, for testing observability.

langchain-core's fake chat models answer, but report no model name and no token usage, so a
run logged from them has no cost. :class:`UsageReportingChatModel` adds what a provider
integration sends: ``ls_model_name`` / ``ls_provider`` / ``ls_temperature``, ``usage_metadata``
and ``response_metadata["model_name"]`` on every reply, usage once in the last chunk when
streaming (as OpenAI does with ``stream_usage``), and ``bind_tools``. Combine it with any
chat model that implements ``_generate``::

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from configurable_agents.testing import UsageReportingChatModel, reply

    class FakeGemini(UsageReportingChatModel, GenericFakeChatModel):
        pass

    model = FakeGemini(messages=iter([reply("hello", input_tokens=12, output_tokens=3)]))

Our own tests and benchmarks use it; so can tests of apps that attach ``MLflowCallbackHandler``
(docs: "Try it offline"). The cost is priced by the chat model's ``model_name`` (what
``ls_model_name`` reports, as with real providers); a reply's ``model=`` may only echo that name
(a dated ``gpt-4o-2024-08-06`` for ``gpt-4o``): a different model is refused with a ValueError
rather than silently priced as another one. Use one chat model per model name.
:class:`InMemorySink` keeps each workflow's facts for assertions, with no backend.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from configurable_agents.observability.facts.model import WorkflowFacts
from configurable_agents.observability.sinks.base import Sink

DEFAULT_MODEL = "gemini-2.5-flash"


def usage(input_tokens: int, output_tokens: int, **details: Any) -> dict[str, Any]:
    """``usage_metadata`` as providers send it (``details``: e.g. ``input_token_details``)."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        **details,
    }


def reply(
    text: str,
    input_tokens: int = 100,
    output_tokens: int = 50,
    model: str | None = None,
    **kwargs: Any,
) -> AIMessage:
    """An answer carrying usage and the model name, like a provider's.

    ``model``: the name the provider echoes; default the chat model's ``model_name``. It
    must start with that name (see the module docstring): pricing follows the chat model.
    """
    return AIMessage(
        text,
        usage_metadata=usage(input_tokens, output_tokens),  # type: ignore[arg-type]
        response_metadata={"model_name": model} if model else {},
        **kwargs,
    )


class UsageReportingChatModel(BaseChatModel):
    """The provider-like reporting; the answers come from the model it is combined with."""

    model_name: str = DEFAULT_MODEL
    temperature: float | None = 0.7
    stream_usage: bool = True

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model_name, "temperature": self.temperature}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_model_name"] = self.model_name
        params["ls_provider"] = "google"
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        return params

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        result: ChatResult = super()._generate(  # type: ignore[safe-super]
            messages, stop=stop, run_manager=run_manager, **kwargs)
        for generation in result.generations:
            generation.message = self._echo_model(generation.message)
        return result

    def _echo_model(self, message: BaseMessage) -> BaseMessage:
        """The reply's model name, filled in or checked against ``model_name`` (priced)."""
        echoed = message.response_metadata.get("model_name")
        if echoed is None:
            metadata = {**message.response_metadata, "model_name": self.model_name}
            return message.model_copy(update={"response_metadata": metadata})
        if not str(echoed).startswith(self.model_name):
            raise ValueError(
                f"reply(model={echoed!r}) from a chat model with model_name="
                f"{self.model_name!r}: cost is priced by model_name (ls_model_name), so this "
                f"reply would be billed as {self.model_name!r}; create the chat model with "
                f"model_name={echoed!r} instead")
        return message

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        """Word by word; usage comes once, in the last chunk."""
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


__all__ = ["DEFAULT_MODEL", "UsageReportingChatModel", "reply", "usage"]


class InMemorySink(Sink):
    """Keeps every workflow's facts in memory, like OpenTelemetry's ``InMemorySpanExporter``.

    Pass it to the handler (``MLflowCallbackHandler(config, sinks=[sink])``), run the app,
    ``handler.flush()``, then read :meth:`finished`: the same frozen facts every other
    sink got (totals, attribution, caller metadata, the node tree), with no backend and no
    reach into the handler's private state.
    """

    name = "memory"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._facts: list[WorkflowFacts] = []

    def export(self, facts: WorkflowFacts) -> None:
        with self._lock:
            self._facts.append(facts)
        self.counters.add("exported")

    def finished(self) -> tuple[WorkflowFacts, ...]:
        """The facts of every workflow exported so far, in the order they arrived."""
        with self._lock:
            return tuple(self._facts)

    def clear(self) -> None:
        with self._lock:
            self._facts.clear()
