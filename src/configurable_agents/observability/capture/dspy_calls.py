"""One DSPy LM call -> an :class:`LLMCallRecord` the facts layer prices like any LangChain call.

DSPy hands its callbacks the prompt on ``on_lm_start`` and only the output texts on
``on_lm_end``; the usage the provider reported (LiteLLM's or DSPy's native engine's
OpenAI-shaped dict, with ``prompt_tokens_details.cached_tokens`` and
``completion_tokens_details.reasoning_tokens``) goes to ``settings.usage_tracker``.
So for the duration of one LM call we put a :class:`CallUsage` there: it receives
exactly that call's usage (and forwards it to the user's own tracker, so
``dspy.track_usage`` and ``Prediction.get_lm_usage()`` are unchanged). DSPy skips the
tracker on a response served from its own cache, which is how a cache hit is told
apart from a provider that reported nothing.

The response is stored the way LangChain's OpenAI client stores one (an ``AIMessage``
with the raw usage under ``response_metadata["token_usage"]``), so the facts layer
reads it with the same OpenAI usage reader and prices it with the same price book.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.messages import AIMessage, convert_to_messages
from langchain_core.outputs import ChatGeneration, LLMResult

from configurable_agents.observability.capture.records import LLMCallRecord, now_ns

__all__ = ["CallUsage", "finish_lm_call", "start_lm_call"]


class CallUsage:
    """A stand-in ``UsageTracker`` for one LM call: keeps its usage, forwards to the user's."""

    __slots__ = ("called", "parent", "usage")

    def __init__(self, parent: Any) -> None:
        self.parent = parent
        self.usage: dict[str, Any] = {}
        self.called = False

    def add_usage(self, lm: str, usage_entry: Mapping[str, Any]) -> None:
        self.called = True
        self.usage = _plain(usage_entry)
        if self.parent is not None:
            self.parent.add_usage(lm, usage_entry)

    def __getattr__(self, name: str) -> Any:
        # Anything else a tracker is asked (usage_data, get_total_tokens) is the user's.
        parent = object.__getattribute__(self, "parent")
        if parent is None:
            raise AttributeError(name)
        return getattr(parent, name)


def _plain(value: Any) -> Any:
    """LiteLLM usage holds pydantic detail objects; keep plain dicts for the facts layer."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _plain(dump())
    return value


def _split_model(model: str) -> tuple[str | None, str]:
    """``openai/gpt-4o`` -> (``openai``, ``gpt-4o``): LiteLLM's provider prefix."""
    provider, sep, name = model.partition("/")
    return (provider, name) if sep and name else (None, model)


def start_lm_call(run_id: UUID, lm: Any, inputs: Mapping[str, Any]) -> tuple[LLMCallRecord, Any]:
    """The record of a starting LM call and the context token that installed its tracker."""
    from dspy.dsp.utils.settings import settings, thread_local_overrides

    model = str(getattr(lm, "model", "") or "")
    provider, name = _split_model(model)
    kwargs = {**(getattr(lm, "kwargs", None) or {}), **(inputs.get("kwargs") or {})}
    params = {k: v for k, v in kwargs.items() if not k.startswith("api_")}
    params["model"] = name or model
    metadata: dict[str, Any] = {"ls_model_name": name or model, "dspy_model": model}
    if provider:
        metadata["ls_provider"] = provider
    messages = inputs.get("messages")
    prompt = inputs.get("prompt")
    record = LLMCallRecord(
        run_id=run_id,
        start_ns=now_ns(),
        messages=[convert_to_messages(messages)] if messages else None,
        prompts=[str(prompt)] if prompt and not messages else None,
        invocation_params=params,
        metadata=metadata,
        name=type(lm).__name__,
    )
    tracker = CallUsage(settings.usage_tracker)
    overrides = thread_local_overrides.get()
    token = thread_local_overrides.set(type(overrides)({**overrides, "usage_tracker": tracker}))
    return record, (token, tracker)


def finish_lm_call(record: LLMCallRecord, state: Any, outputs: Any, error: Any) -> None:
    """Restore the user's tracker and store what the call returned, with its usage."""
    from dspy.dsp.utils.settings import thread_local_overrides

    token, tracker = state
    try:
        thread_local_overrides.reset(token)
    except ValueError:  # ended in another context (should not happen): restore by value
        overrides = dict(thread_local_overrides.get())
        overrides["usage_tracker"] = tracker.parent
        thread_local_overrides.set(type(thread_local_overrides.get())(overrides))
    record.end_ns = now_ns()
    if error is not None:
        record.error = error
        return
    texts = [_output_text(o) for o in (outputs if isinstance(outputs, list) else [outputs])]
    usage = tracker.usage
    generations = []
    for i, text in enumerate(texts or [""]):
        if tracker.called:
            # Providers report one usage per request; it rides on the first choice only.
            meta: dict[str, Any] = {"token_usage": usage} if usage and i == 0 else {}
            message = AIMessage(content=text, response_metadata=meta)
        else:  # served from DSPy's cache: nothing billed (LangChain's cache-hit convention)
            message = AIMessage(
                content=text,
                usage_metadata={"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                                "total_cost": 0},  # type: ignore[typeddict-unknown-key]
            )
        generations.append(ChatGeneration(message=message))
    record.response = LLMResult(generations=[generations])


def _output_text(output: Any) -> str:
    if isinstance(output, Mapping):
        return str(output.get("text") or "")
    text = getattr(output, "text", None)
    return str(text if text is not None else output)

