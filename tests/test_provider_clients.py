"""The real provider clients, pointed at a local fake server, parsed by our code.

langchain-openai, langchain-anthropic and langchain-google-genai build the
messages themselves from each provider's documented JSON / SSE, so these tests
check our extraction and pricing against what the clients really produce,
including cached, cache-write and reasoning tokens, invoke and stream.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult

from configurable_agents.observability.facts.cost_estimator import PriceBook
from configurable_agents.observability.facts.usage import (
    STREAM_USAGE_HINT,
    TokenUsage,
    estimate_usage,
    extract_usage,
    missing_stream_usage_hint,
    model_name_from_response,
)

try:  # tests/ may or may not become a package
    from tests.fake_provider_server import TEXT_PARTS, FakeProviderServer
    from tests.fakes import byte_tokens
except ImportError:  # pragma: no cover
    from fake_provider_server import TEXT_PARTS, FakeProviderServer
    from fakes import byte_tokens

langchain_openai = pytest.importorskip("langchain_openai")
langchain_anthropic = pytest.importorskip("langchain_anthropic")
langchain_google_genai = pytest.importorskip("langchain_google_genai")

REPLY = "".join(TEXT_PARTS)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProviderServer]:
    srv = FakeProviderServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


class Capture(BaseCallbackHandler):
    """What a callback handler receives in on_llm_end."""

    def __init__(self) -> None:
        self.result: LLMResult | None = None

    def on_llm_end(self, response: LLMResult, **kwargs: object) -> None:
        self.result = response


def _stream(model, *, capture: Capture, **kwargs: object):
    chunks = list(model.stream("hi", config={"callbacks": [capture]}, **kwargs))
    assert "".join(str(c.content) for c in chunks if isinstance(c.content, str)) == REPLY
    assert capture.result is not None
    return chunks, capture.result


# --- OpenAI --------------------------------------------------------------------------

OPENAI_USAGE = {
    "prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 600, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 300, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0,
                                  "rejected_prediction_tokens": 0},
}
OPENAI_EXPECTED = TokenUsage(input=1000, output=500, total=1500, cache_read=600, reasoning=300,
                             method="usage_metadata")


def _openai(server: FakeProviderServer, model: str = "o3", **kwargs: object):
    return langchain_openai.ChatOpenAI(model=model, base_url=server.url + "/v1", api_key="test",
                                       max_retries=0, timeout=10, **kwargs)


def test_openai_invoke_reasoning_and_cached_tokens(server: FakeProviderServer,
                                                   book: PriceBook) -> None:
    server.openai_usage = OPENAI_USAGE
    capture = Capture()
    message = _openai(server).invoke("hi", config={"callbacks": [capture]})
    assert extract_usage(message) == OPENAI_EXPECTED
    assert extract_usage(capture.result) == OPENAI_EXPECTED
    echoed = model_name_from_response(capture.result)
    assert echoed == "o3-2025-04-16"  # the provider's dated name

    cost = book.estimate_cost(OPENAI_EXPECTED, echoed, "openai")
    # o3: $2 in, $0.50 cached, $8 out; 300 reasoning tokens are part of the 500 output.
    assert cost.source == "genai-prices" and cost.matched_model == "o3"
    assert cost.amount == pytest.approx(0.0051, abs=1e-12)  # 400*2 + 600*0.5 + 500*8, /1e6
    assert cost.breakdown.reasoning == pytest.approx(300 * 8 / 1e6)
    assert cost.breakdown.output == pytest.approx(200 * 8 / 1e6)
    assert cost.breakdown.cache_read == pytest.approx(600 * 0.5 / 1e6)


def test_openai_custom_base_url_streams_no_usage_unless_asked(
    server: FakeProviderServer, book: PriceBook
) -> None:
    server.openai_usage = OPENAI_USAGE
    model = _openai(server, model="gpt-4o")

    chunks, result = _stream(model, capture=Capture())
    body = server.requests[-1][1]
    assert "stream_options" not in body  # custom base_url: the client did not ask for usage
    assert extract_usage(chunks) is None
    assert extract_usage(result) is None
    assert missing_stream_usage_hint(result) == STREAM_USAGE_HINT
    assert missing_stream_usage_hint(chunks) == STREAM_USAGE_HINT

    # The handler's fallback: estimate locally (a small byte-level encoding stands in
    # for o200k_base, which cannot be downloaded here), priced and marked estimated.
    with byte_tokens():
        usage = extract_usage(result) or estimate_usage(["hi"], [REPLY], "gpt-4o")
    assert usage == TokenUsage(input=2, output=len(REPLY), total=2 + len(REPLY), estimated=True,
                               method="tiktoken:o200k_base")
    cost = book.estimate_cost(usage, model_name_from_response(result), "openai")
    assert cost.estimated and cost.priced
    assert cost.amount == pytest.approx((2 * 2.5 + len(REPLY) * 10) / 1e6)

    # With stream_usage=True the usage arrives once, in the last chunk: counted once.
    chunks, result = _stream(model, capture=Capture(), stream_usage=True)
    assert server.requests[-1][1]["stream_options"] == {"include_usage": True}
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    assert extract_usage(chunks) == OPENAI_EXPECTED
    assert extract_usage(result) == OPENAI_EXPECTED
    assert missing_stream_usage_hint(result) is None


# --- Anthropic -----------------------------------------------------------------------

ANTHROPIC_USAGE = {
    "input_tokens": 2000, "cache_read_input_tokens": 8000, "cache_creation_input_tokens": 700,
    "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 200},
    "output_tokens": 500, "service_tier": "standard",
}
ANTHROPIC_EXPECTED = TokenUsage(input=10700, output=500, total=11200, cache_read=8000,
                                cache_write=700, cache_write_1h=200, method="usage_metadata")
# claude-sonnet-4: $3 in, $0.30 cache read, $3.75 5-min write, $6 1-hour write, $15 out.
ANTHROPIC_COST = (2000 * 3 + 8000 * 0.3 + 500 * 3.75 + 200 * 6 + 500 * 15) / 1e6


def _anthropic(server: FakeProviderServer):
    return langchain_anthropic.ChatAnthropic(model="claude-sonnet-4", base_url=server.url,
                                             api_key="test", max_retries=0, timeout=10)


def test_anthropic_invoke_cache_reads_and_ttl_writes(server: FakeProviderServer,
                                                     book: PriceBook) -> None:
    server.anthropic_usage = ANTHROPIC_USAGE
    capture = Capture()
    message = _anthropic(server).invoke("hi", config={"callbacks": [capture]})
    # The client folds reads and writes into input_tokens and zeroes cache_creation.
    assert message.usage_metadata["input_token_details"]["cache_creation"] == 0
    assert extract_usage(message) == ANTHROPIC_EXPECTED
    assert extract_usage(capture.result) == ANTHROPIC_EXPECTED
    echoed = model_name_from_response(capture.result)
    assert echoed == "claude-sonnet-4-20250514"
    cost = book.estimate_cost(ANTHROPIC_EXPECTED, echoed, "anthropic")
    assert cost.amount == pytest.approx(ANTHROPIC_COST, abs=1e-12)
    assert cost.breakdown.cache_write == pytest.approx((500 * 3.75 + 200 * 6) / 1e6)


def test_anthropic_stream_usage_counted_once(server: FakeProviderServer, book: PriceBook) -> None:
    server.anthropic_usage = ANTHROPIC_USAGE
    chunks, result = _stream(_anthropic(server), capture=Capture())
    assert extract_usage(chunks) == ANTHROPIC_EXPECTED
    assert extract_usage(result) == ANTHROPIC_EXPECTED
    assert model_name_from_response(result) == "claude-sonnet-4-20250514"
    assert book.estimate_cost(extract_usage(result), "claude-sonnet-4-20250514").amount == (
        pytest.approx(ANTHROPIC_COST, abs=1e-12))


# --- Gemini --------------------------------------------------------------------------

GEMINI_USAGE = {"promptTokenCount": 1000, "candidatesTokenCount": 200, "thoughtsTokenCount": 300,
                "cachedContentTokenCount": 400, "totalTokenCount": 1500}
# The client adds thoughts into output_tokens: 200 + 300.
GEMINI_EXPECTED = TokenUsage(input=1000, output=500, total=1500, cache_read=400, reasoning=300,
                             method="usage_metadata")
GEMINI_COST = (600 * 0.30 + 400 * 0.03 + 500 * 2.50) / 1e6  # gemini-2.5-flash


def _gemini(server: FakeProviderServer):
    # base_url (alias client_options={"api_endpoint": ...}) goes to google-genai's
    # HttpOptions; the SDK then speaks REST over httpx to our server.
    return langchain_google_genai.ChatGoogleGenerativeAI(
        model="gemini-2.5-flash", base_url=server.url, api_key="test", max_retries=0, timeout=10)


def test_gemini_invoke_thoughts_and_cached_content(server: FakeProviderServer,
                                                  book: PriceBook) -> None:
    server.gemini_usage = GEMINI_USAGE
    capture = Capture()
    message = _gemini(server).invoke("hi", config={"callbacks": [capture]})
    assert ":generateContent" in server.requests[-1][0]
    assert extract_usage(message) == GEMINI_EXPECTED
    assert extract_usage(capture.result) == GEMINI_EXPECTED
    assert model_name_from_response(capture.result) == "gemini-2.5-flash"
    cost = book.estimate_cost(GEMINI_EXPECTED, "gemini-2.5-flash", "google_genai")
    assert cost.source == "override"
    assert cost.amount == pytest.approx(GEMINI_COST, abs=1e-12)


def test_gemini_stream_cumulative_counts_not_summed(server: FakeProviderServer) -> None:
    server.gemini_usage = GEMINI_USAGE
    chunks, result = _stream(_gemini(server), capture=Capture())
    assert ":streamGenerateContent" in server.requests[-1][0]
    # Google sends cumulative counts on every chunk; the total is still 1000 input.
    assert extract_usage(chunks) == GEMINI_EXPECTED
    assert extract_usage(result) == GEMINI_EXPECTED
