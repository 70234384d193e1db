"""What ``on_llm_end`` keeps of a model result, taken cheaply on the caller thread.

Lives in capture because the hot path needs it and must not import the facts layer;
the facts layer rebuilds the real ``LLMResult`` with :func:`restore_result`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.outputs import ChatGeneration, Generation, LLMResult


@dataclass(frozen=True, slots=True)
class ResultSnapshot:
    """What ``on_llm_end`` keeps of an ``LLMResult``: cheap to take on the caller thread.

    Holds each generation's *current* message (or text) and info, not the generation
    objects: langchain-core's InMemoryCache hands back the same ``ChatGeneration``
    objects it stored and a later cache hit reassigns ``generation.message``, which
    would make the earlier, paid call look like a free cache hit. No pydantic copies
    here; :func:`restore_result` rebuilds a real ``LLMResult`` on the exporter thread.
    """

    generations: tuple[tuple[tuple[Any, str, Any], ...], ...]
    llm_output: Any


def snapshot_result(result: Any) -> Any:
    generations = getattr(result, "generations", None)
    if not isinstance(result, LLMResult) or generations is None:
        return result
    return ResultSnapshot(
        tuple(
            tuple((getattr(g, "message", None), g.text, g.generation_info) for g in gens)
            for gens in generations
        ),
        result.llm_output,
    )


def restore_result(value: Any) -> Any:
    """The ``LLMResult`` a :class:`ResultSnapshot` was taken from (others pass through)."""
    if not isinstance(value, ResultSnapshot):
        return value
    return LLMResult(
        generations=[
            [
                ChatGeneration(message=message, generation_info=info)
                if message is not None
                else Generation(text=text, generation_info=info)
                for message, text, info in gens
            ]
            for gens in value.generations
        ],
        llm_output=value.llm_output,
    )
