"""Chat models for a node's resolved ``llm`` settings: google, openai, anthropic or demo.

Real providers need their LangChain package (the ``providers`` extra) and an API
key in the environment; either missing gives one :class:`ProviderError` that
names the fix. The demo provider needs neither and keeps the configured model
name, so the runs it produces are priced as that model.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from configurable_agents.config.schema import LLMConfig
from configurable_agents.runtime.demo_model import DemoChatModel

DEMO_ENV = "CONFIGURABLE_AGENTS_DEMO"
EXTRA_HINT = "pip install 'configurable-agents[providers]'"

ChatModelFactory = Callable[[LLMConfig], BaseChatModel]


class ProviderError(RuntimeError):
    """A provider cannot be used here: its package or its API key is missing."""


@dataclass(frozen=True)
class ProviderSpec:
    module: str
    class_name: str
    package: str
    key_vars: tuple[str, ...]
    max_tokens_arg: str


PROVIDERS: dict[str, ProviderSpec] = {
    "google": ProviderSpec(
        "langchain_google_genai",
        "ChatGoogleGenerativeAI",
        "langchain-google-genai",
        ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
        "max_output_tokens",
    ),
    "openai": ProviderSpec(
        "langchain_openai", "ChatOpenAI", "langchain-openai", ("OPENAI_API_KEY",), "max_tokens"
    ),
    "anthropic": ProviderSpec(
        "langchain_anthropic",
        "ChatAnthropic",
        "langchain-anthropic",
        ("ANTHROPIC_API_KEY",),
        "max_tokens",
    ),
}


def demo_requested(flag: bool | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """``--demo`` when given, else ``CONFIGURABLE_AGENTS_DEMO`` (1/true/yes/on)."""
    if flag is not None:
        return flag
    environ = os.environ if environ is None else environ
    return environ.get(DEMO_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def provider_problem(provider: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Why ``provider`` cannot be used here, or None when it can."""
    if provider == "demo":
        return None
    spec = PROVIDERS[provider]
    environ = os.environ if environ is None else environ
    try:
        importlib.import_module(spec.module)
    except ImportError:
        return (
            f"provider '{provider}' needs the {spec.package} package: run {EXTRA_HINT} "
            f"(or pass --demo / set {DEMO_ENV}=1 to run offline)"
        )
    if not any(environ.get(var) for var in spec.key_vars):
        return (
            f"provider '{provider}' needs an API key: set {' or '.join(spec.key_vars)} "
            f"(or pass --demo / set {DEMO_ENV}=1 to run offline)"
        )
    return None


def create_chat_model(
    llm: LLMConfig, *, demo: bool = False, timeout: float | None = None, max_retries: int = 0,
    base_url: str | None = None,
) -> BaseChatModel:
    """A chat model for ``llm``; the offline demo model when ``demo`` or provider ``demo``.

    ``max_retries`` defaults to 0 because the runner retries through LangGraph's
    RetryPolicy instead, which the MLflow handler can see and count (SDK retries
    emit no callback). ``base_url`` points the provider's client at another endpoint (a
    gateway or proxy); then only the package is required, not the provider's API key.
    """
    if demo or llm.provider == "demo":
        return DemoChatModel(
            model=llm.model, temperature=llm.temperature, max_tokens=llm.max_tokens
        )
    spec = PROVIDERS[llm.provider]
    if base_url is None:
        problem = provider_problem(llm.provider)
        if problem:
            raise ProviderError(problem)
    try:
        cls = getattr(importlib.import_module(spec.module), spec.class_name)
    except ImportError:
        raise ProviderError(f"provider '{llm.provider}' needs the {spec.package} package: "
                            f"run {EXTRA_HINT}") from None
    kwargs: dict[str, object] = {
        "model": llm.model,
        "temperature": llm.temperature,
        "max_retries": max_retries,
    }
    if base_url is not None:
        kwargs["base_url"] = base_url
    if timeout is not None:
        kwargs["timeout"] = timeout
    if llm.max_tokens is not None:
        kwargs[spec.max_tokens_arg] = llm.max_tokens
    if llm.provider == "openai":
        kwargs["stream_usage"] = True  # usage on streams, also behind proxies
    return cls(**kwargs)


def default_factory(*, demo: bool, timeout: float | None, max_retries: int = 0) -> ChatModelFactory:
    """The factory the executor uses unless a test or caller supplies its own."""

    def factory(llm: LLMConfig) -> BaseChatModel:
        return create_chat_model(llm, demo=demo, timeout=timeout, max_retries=max_retries)

    return factory
