"""tiktoken fallback: lazy, once, bounded, offline-safe; a character estimate as the last resort.

No test touches the network: tiktoken's download function (``tiktoken.load.read_file``)
is replaced by one that fails or blocks, and the "encoding available" path uses a
small byte-level ``tiktoken.Encoding`` built here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken
import tiktoken.load

from configurable_agents.observability.facts import tokenizer
from configurable_agents.observability.facts.tokenizer import (
    count_tokens,
    encoding_name_for_model,
    estimate_usage,
    get_encoding,
    register_encoding,
    reset_cache,
)
from configurable_agents.observability.facts.usage import TokenUsage
from configurable_agents.observability.facts.usage import (
    estimate_usage as estimate_from_usage_module,
)


def byte_encoding(name: str = "bytes_test") -> tiktoken.Encoding:
    """One token per UTF-8 byte, plus one merge ("ab") to prove BPE runs."""
    ranks = {bytes([i]): i for i in range(256)}
    ranks[b"ab"] = 256
    return tiktoken.Encoding(name=name, pat_str=r"\S+|\s+", mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 257})


@pytest.fixture(autouse=True)
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken-cache"))  # empty cache
    monkeypatch.setenv("CONFIGURABLE_AGENTS_TIKTOKEN_TIMEOUT_S", "0.3")
    reset_cache()
    yield
    reset_cache()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """tiktoken's download fails as it does offline; returns the URLs it was asked for."""
    calls: list[str] = []

    def fail(blobpath: str) -> bytes:
        calls.append(blobpath)
        raise ConnectionError(f"offline: {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file", fail)
    return calls


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"), ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"), ("gpt-5", "o200k_base"), ("o1-preview", "o200k_base"),
        ("o3", "o200k_base"), ("o4-mini", "o200k_base"), ("openai/gpt-4o", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:org::abc", "o200k_base"),
        ("gpt-4", "cl100k_base"), ("gpt-3.5-turbo", "cl100k_base"),
        ("gemini-2.5-flash", "cl100k_base"), ("claude-sonnet-4", "cl100k_base"),
        (None, "cl100k_base"),
    ],
)
def test_encoding_choice(model: str | None, encoding: str) -> None:
    assert encoding_name_for_model(model) == encoding


def test_registered_encoding_counts_exactly() -> None:
    register_encoding(byte_encoding(), "o200k_base")
    assert count_tokens("abc", "gpt-4o") == (2, "tiktoken:o200k_base")  # "ab" + "c"
    # Special-token text in user content is counted, never raises.
    assert count_tokens("<|endoftext|>", "gpt-4o")[0] == len("<|endoftext|>")
    usage = estimate_usage(["ab ab", "x"], ["abab"], "gpt-4o")
    assert usage == TokenUsage(input=4, output=2, total=6, estimated=True,
                               method="tiktoken:o200k_base")
    assert estimate_from_usage_module(["ab ab", "x"], ["abab"], "gpt-4o") == usage


def test_offline_falls_back_to_chars_with_one_warning(
    offline: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=tokenizer.__name__):
        first = estimate_usage(["x" * 10], ["y" * 3], "gpt-4o")
        second = estimate_usage(["z" * 8], [""], "gpt-4o")
        other = estimate_usage(["abcde"], [], "gemini-2.5-flash")  # cl100k_base also fails
    assert first == TokenUsage(input=3, output=1, total=4, estimated=True, method="chars/4")
    assert second == TokenUsage(input=2, output=0, total=2, estimated=True, method="chars/4")
    assert other.input == 2 and other.method == "chars/4"
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    # Each encoding is attempted once per process, not once per call.
    assert sorted(offline) == sorted(
        ["https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
         "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"])


def test_hanging_download_is_bounded_and_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    calls: list[str] = []

    def hang(blobpath: str) -> bytes:
        calls.append(blobpath)
        release.wait(10)
        raise ConnectionError("gave up")

    monkeypatch.setattr(tiktoken.load, "read_file", hang)
    results: list[TokenUsage] = []
    started = time.monotonic()
    try:
        threads = [threading.Thread(target=lambda: results.append(
            estimate_usage(["abcdefgh"], ["abcd"], "o3"))) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        elapsed = time.monotonic() - started
    finally:
        release.set()  # let the abandoned loader thread finish (it is a daemon anyway)
    assert elapsed < 2.0  # one 0.3 s bounded attempt, not one per thread, never a hang
    assert len(calls) == 1
    assert results == [TokenUsage(input=2, output=1, total=3, estimated=True,
                                  method="chars/4")] * 6


def test_cache_dir_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               offline: list[str]) -> None:
    # tiktoken looks in TIKTOKEN_CACHE_DIR first; an entry with the wrong hash is
    # rejected and re-fetched (here: fails), so we fall back instead of using junk.
    import hashlib

    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"junk")
    assert get_encoding("cl100k_base") is None
    assert offline == [url]


def test_reset_cache_allows_a_new_attempt(offline: list[str]) -> None:
    assert get_encoding("o200k_base") is None
    assert get_encoding("o200k_base") is None
    assert len(offline) == 1
    reset_cache()
    assert get_encoding("o200k_base") is None
    assert len(offline) == 2
