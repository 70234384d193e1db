"""langchain-core fake chat models that report realistic usage (no mocks of LangChain)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from configurable_agents.testing import UsageReportingChatModel, reply, usage

__all__ = [
    "ScriptedToolModel", "UsageChatModel", "byte_tokens", "flaky", "repeating", "reply", "usage",
]


class UsageChatModel(UsageReportingChatModel, GenericFakeChatModel):
    """GenericFakeChatModel (scripted ``messages``) that reports usage like a provider."""


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


@contextmanager
def byte_tokens(name: str = "o200k_base") -> Iterator[None]:
    """tiktoken's ``name`` encoding, which cannot be downloaded here, replaced by a byte-level
    one (one byte, one token) while the block runs: estimates become exact and offline."""
    import tiktoken

    from configurable_agents.observability.facts import tokenizer

    tokenizer.reset_cache()
    tokenizer.register_encoding(
        tiktoken.Encoding(name="bytes", pat_str=r"\S+|\s+",
                          mergeable_ranks={bytes([i]): i for i in range(256)},
                          special_tokens={}),
        name,
    )
    try:
        yield
    finally:
        tokenizer.reset_cache()
