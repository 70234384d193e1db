"""Usage extraction from every provider format, in LangChain's semantic, counted once."""

from __future__ import annotations

import itertools

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    Generation,
    LLMResult,
)

from configurable_agents.observability.capture.snapshot import restore_result, snapshot_result
from configurable_agents.observability.facts.cost_estimator import PriceBook
from configurable_agents.observability.facts.usage import (
    STREAM_USAGE_HINT,
    TokenUsage,
    extract_usage,
    is_llm_cache_hit,
    missing_stream_usage_hint,
    model_name_from_response,
    usage_from_mapping,
)


def um(i: int, o: int, **details: dict[str, int]) -> dict:
    return {"input_tokens": i, "output_tokens": o, "total_tokens": i + o, **details}


# --- TokenUsage -------------------------------------------------------------------------


def test_token_usage_add_and_sum() -> None:
    a = TokenUsage(input=10, output=5, total=15, cache_read=4, reasoning=2, method="usage_metadata")
    b = TokenUsage(input=1, output=2, total=3, estimated=True, method="tiktoken:o200k_base")
    total = a + b
    assert total == TokenUsage(input=11, output=7, total=18, cache_read=4, reasoning=2,
                               estimated=True, method="usage_metadata+tiktoken:o200k_base")
    assert sum([a, b]) == total
    assert TokenUsage() + a == a and a + TokenUsage() == a
    assert (a + a).method == "usage_metadata"
    with pytest.raises(AttributeError):
        a.input = 3  # type: ignore[misc]


def test_cache_hit_flag_survives_only_if_all_parts_are_hits() -> None:
    hit = TokenUsage(input=1, output=1, total=2, llm_cache_hit=True, method="llm_cache")
    real = TokenUsage(input=1, output=1, total=2, method="usage_metadata")
    assert (hit + hit).llm_cache_hit is True
    assert (hit + real).llm_cache_hit is False


# --- provider formats -------------------------------------------------------------------


def test_usage_metadata_standard_openai_details() -> None:
    msg = AIMessage("x", usage_metadata=um(1000, 500,
                                           input_token_details={"cache_read": 600, "audio": 10},
                                           output_token_details={"reasoning": 300, "audio": 7}))
    assert extract_usage(msg) == TokenUsage(input=1000, output=500, total=1500, cache_read=600,
                                            reasoning=300, audio_in=10, audio_out=7,
                                            method="usage_metadata")


def test_usage_metadata_service_tier_prefixed_details_are_read() -> None:
    # ChatOpenAI with service_tier="priority" prefixes the detail keys.
    msg = AIMessage("x", usage_metadata=um(
        100, 50, input_token_details={"priority_cache_read": 40, "priority": 60},
        output_token_details={"priority_reasoning": 20, "priority": 30}))
    usage = extract_usage(msg)
    assert usage is not None
    assert (usage.cache_read, usage.reasoning) == (40, 20)


def test_anthropic_usage_metadata_ephemeral_writes_not_double_counted() -> None:
    # What ChatAnthropic builds: cache_creation zeroed, writes under ephemeral_* keys.
    msg = AIMessage("x", usage_metadata=um(10700, 500, input_token_details={
        "cache_read": 8000, "cache_creation": 0,
        "ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 200}))
    usage = extract_usage(msg)
    assert usage == TokenUsage(input=10700, output=500, total=11200, cache_read=8000,
                               cache_write=700, cache_write_1h=200, method="usage_metadata")


def test_generic_cache_creation_used_when_no_ttl_split() -> None:
    msg = AIMessage("x", usage_metadata=um(100, 1, input_token_details={"cache_creation": 30}))
    usage = extract_usage(msg)
    assert usage is not None and (usage.cache_write, usage.cache_write_1h) == (30, 0)


def test_raw_anthropic_usage_adds_cache_to_input() -> None:
    raw = {"input_tokens": 2000, "cache_read_input_tokens": 8000,
           "cache_creation_input_tokens": 700,
           "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 200},
           "output_tokens": 500}
    msg = AIMessage("x", response_metadata={"usage": raw})
    assert extract_usage(msg) == TokenUsage(input=10700, output=500, total=11200,
                                            cache_read=8000, cache_write=700, cache_write_1h=200,
                                            method="anthropic")


def test_raw_gemini_usage_adds_thoughts_to_output_snake_and_camel() -> None:
    snake = {"prompt_token_count": 1000, "candidates_token_count": 200,
             "thoughts_token_count": 300, "cached_content_token_count": 400,
             "total_token_count": 1500,
             "prompt_tokens_details": [{"modality": "TEXT", "token_count": 900},
                                       {"modality": "AUDIO", "token_count": 100}]}
    camel = {"promptTokenCount": 1000, "candidatesTokenCount": 200, "thoughtsTokenCount": 300,
             "cachedContentTokenCount": 400, "totalTokenCount": 1500,
             "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 100}]}
    expected = TokenUsage(input=1000, output=500, total=1500, cache_read=400, reasoning=300,
                          audio_in=100, method="gemini")
    assert extract_usage(AIMessage("x", response_metadata={"usage_metadata": snake})) == expected
    assert usage_from_mapping(camel) == expected


def test_raw_openai_chat_and_responses_usage() -> None:
    chat = {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 30},
            "completion_tokens_details": {"reasoning_tokens": 20}}
    responses = {"input_tokens": 100, "output_tokens": 50, "total_tokens": 150,
                 "input_tokens_details": {"cached_tokens": 30},
                 "output_tokens_details": {"reasoning_tokens": 20}}
    expected = TokenUsage(input=100, output=50, total=150, cache_read=30, reasoning=20,
                          method="openai")
    assert extract_usage(AIMessage("x", response_metadata={"token_usage": chat})) == expected
    assert usage_from_mapping(responses) == expected


def test_bedrock_invocation_metrics_and_converse() -> None:
    metrics = {"inputTokenCount": 120, "outputTokenCount": 30, "invocationLatency": 900,
               "firstByteLatency": 300}
    msg = AIMessage("x", response_metadata={"amazon-bedrock-invocationMetrics": metrics})
    assert extract_usage(msg) == TokenUsage(input=120, output=30, total=150, method="bedrock")
    converse = {"inputTokens": 20, "outputTokens": 10, "totalTokens": 130,
                "cacheReadInputTokens": 100, "cacheWriteInputTokens": 0}
    assert extract_usage(AIMessage("x", response_metadata={"usage": converse})) == TokenUsage(
        input=120, output=10, total=130, cache_read=100, method="bedrock")


def test_ollama_counts_at_top_level_of_response_metadata() -> None:
    msg = AIMessage("x", response_metadata={"model": "llama3.2", "prompt_eval_count": 26,
                                            "eval_count": 298, "done": True})
    assert extract_usage(msg) == TokenUsage(input=26, output=298, total=324, method="ollama")
    assert model_name_from_response(msg) == "llama3.2"


def test_usage_metadata_wins_over_raw_metadata_counted_once() -> None:
    msg = AIMessage("x", usage_metadata=um(10, 5), response_metadata={
        "token_usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
    result = LLMResult(generations=[[ChatGeneration(message=msg)]],
                       llm_output={"token_usage": {"prompt_tokens": 10, "completion_tokens": 5}})
    assert extract_usage(result) == TokenUsage(input=10, output=5, total=15,
                                               method="usage_metadata")


def test_llm_output_used_only_when_generations_carry_nothing() -> None:
    result = LLMResult(generations=[[Generation(text="a")]], llm_output={
        "token_usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})
    assert extract_usage(result) == TokenUsage(input=7, output=3, total=10, method="llm_output")
    assert extract_usage(LLMResult(generations=[[Generation(text="a")]])) is None


def test_n_choices_share_usage_batches_are_summed() -> None:
    same = um(10, 4)
    choices = [ChatGeneration(message=AIMessage(str(i), usage_metadata=same)) for i in range(3)]
    second_prompt = [ChatGeneration(message=AIMessage("b", usage_metadata=um(20, 6)))]
    result = LLMResult(generations=[choices, second_prompt])
    assert extract_usage(result) == TokenUsage(input=30, output=10, total=40,
                                               method="usage_metadata")


def test_chat_result_choices_are_one_call() -> None:
    choices = [ChatGeneration(message=AIMessage(str(i), usage_metadata=um(10, 4)))
               for i in range(2)]
    assert extract_usage(ChatResult(generations=choices)) == TokenUsage(
        input=10, output=4, total=14, method="usage_metadata")


def test_stream_chunks_usage_deltas_merged_once() -> None:
    # OpenAI/Anthropic: usage on one chunk only; Gemini client: deltas per chunk.
    chunks = [AIMessageChunk("He"), AIMessageChunk("llo"),
              AIMessageChunk("", usage_metadata=um(100, 20))]
    assert extract_usage(chunks) == TokenUsage(input=100, output=20, total=120,
                                               method="usage_metadata")
    deltas = [
        AIMessageChunk("a", usage_metadata=um(100, 0, input_token_details={"cache_read": 40})),
        AIMessageChunk("b", usage_metadata=um(0, 20, output_token_details={"reasoning": 5})),
    ]
    assert extract_usage(deltas) == TokenUsage(input=100, output=20, total=120, cache_read=40,
                                               reasoning=5, method="usage_metadata")
    gen_chunks = [ChatGenerationChunk(message=c) for c in chunks]
    assert extract_usage(gen_chunks) == extract_usage(chunks)


def test_raw_cumulative_usage_on_chunks_takes_last_report_not_sum() -> None:
    chunks = [
        AIMessageChunk("a", response_metadata={"usage_metadata": {
            "prompt_token_count": 100, "candidates_token_count": 5, "total_token_count": 105}}),
        AIMessageChunk("b", response_metadata={"usage_metadata": {
            "prompt_token_count": 100, "candidates_token_count": 12, "total_token_count": 112}}),
    ]
    assert extract_usage(chunks) == TokenUsage(input=100, output=12, total=112, method="gemini")


def test_no_usage_anywhere_is_none() -> None:
    assert extract_usage(AIMessage("x")) is None
    assert extract_usage([AIMessageChunk("a"), AIMessageChunk("b")]) is None
    assert extract_usage(None) is None


def test_model_name_from_response() -> None:
    msg = AIMessage("x", response_metadata={"model_name": "gpt-4o-2024-08-06"})
    assert model_name_from_response(msg) == "gpt-4o-2024-08-06"
    assert model_name_from_response(LLMResult(generations=[[ChatGeneration(message=msg)]])) == (
        "gpt-4o-2024-08-06")
    anthropic = AIMessage("x", response_metadata={"model": "claude-sonnet-4-20250514"})
    assert model_name_from_response(anthropic) == "claude-sonnet-4-20250514"
    llm = LLMResult(generations=[[Generation(text="x")]], llm_output={"model_name": "gpt-4o"})
    assert model_name_from_response(llm) == "gpt-4o"
    assert model_name_from_response(AIMessage("x")) is None


def test_stream_usage_hint_only_for_streamed_openai_without_usage() -> None:
    streamed = AIMessageChunk("x", response_metadata={"model_provider": "openai"})
    assert missing_stream_usage_hint(streamed) == STREAM_USAGE_HINT
    assert "stream_usage=True" in STREAM_USAGE_HINT
    result = LLMResult(generations=[[ChatGenerationChunk(message=streamed)]])
    assert missing_stream_usage_hint(result) == STREAM_USAGE_HINT
    with_usage = AIMessageChunk("x", response_metadata={"model_provider": "openai"},
                                usage_metadata=um(1, 1))
    assert missing_stream_usage_hint(with_usage) is None
    not_streamed = AIMessage("x", response_metadata={"model_provider": "openai"})
    assert missing_stream_usage_hint(not_streamed) is None
    other = AIMessageChunk("x", response_metadata={"model_provider": "anthropic"})
    assert missing_stream_usage_hint(other) is None


# --- LangChain LLM cache ------------------------------------------------------------------


class _Capture(BaseCallbackHandler):
    def __init__(self) -> None:
        self.results: list[LLMResult] = []
        self.pinned: list[LLMResult] = []

    def on_llm_end(self, response: LLMResult, **kwargs: object) -> None:
        self.results.append(response)
        self.pinned.append(restore_result(snapshot_result(response)))


def test_llm_cache_hit_is_flagged_and_costs_nothing() -> None:
    reply = AIMessage("hi", usage_metadata=um(1000, 500),
                      response_metadata={"model_name": "gemini-2.5-flash"})
    model = GenericFakeChatModel(messages=itertools.cycle([reply]), cache=InMemoryCache())
    capture = _Capture()
    model.invoke("same prompt", config={"callbacks": [capture]})
    model.invoke("same prompt", config={"callbacks": [capture]})
    # on_llm_end fires for the cache hit too. The cache hands back the generation
    # objects it stored -- the same ones the first result holds -- and langchain-core
    # reassigns their message on a hit, so only the snapshot (what the handler keeps)
    # holds the paid call.
    first, second = capture.pinned
    assert is_llm_cache_hit(capture.results[0])  # the unpinned first result was rewritten

    miss = extract_usage(first)
    hit = extract_usage(second)
    assert miss == TokenUsage(input=1000, output=500, total=1500, method="usage_metadata")
    assert not is_llm_cache_hit(first)
    assert is_llm_cache_hit(second)
    assert hit == TokenUsage(input=1000, output=500, total=1500,
                             method="llm_cache+usage_metadata", llm_cache_hit=True)

    book = PriceBook()
    assert book.estimate_cost(miss, "gemini-2.5-flash").amount == 0.00155
    cost = book.estimate_cost(hit, "gemini-2.5-flash")
    assert (cost.amount, cost.priced, cost.source) == (0.0, True, "cache-hit")


def test_cache_hit_without_cached_usage_still_flagged() -> None:
    # Exactly what langchain-core does to a cached message that had no usage_metadata.
    msg = AIMessage("x").model_copy(update={"usage_metadata": {"total_cost": 0}})
    assert extract_usage(msg) == TokenUsage(method="llm_cache", llm_cache_hit=True)
