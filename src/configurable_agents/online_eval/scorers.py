"""The online scorers, built from ``observability.online_eval``: the ``eval`` command's kinds.

``regex:PATTERN`` is :class:`RegexMatch`; ``llm_judge`` is :class:`LLMJudge` on the configured
model (``base_url`` points an OpenAI-compatible client at a gateway). The judge's calls run
with their own handler (MLflow only, never online evaluation again), so they are logged as
runs of ``<workflow>_judge`` and their tokens and cost stay apart from the workflow's.
"""

from __future__ import annotations

import importlib
from typing import Any

from langchain_core.language_models import BaseChatModel

from configurable_agents.config.online_eval_config import JudgeConfig, OnlineEvalConfig
from configurable_agents.config.schema import LLMConfig
from configurable_agents.evaluation.judge import LLMJudge
from configurable_agents.evaluation.scorers import RegexMatch, Scorer
from configurable_agents.runtime.providers import PROVIDERS, ProviderError, create_chat_model


def judge_model(config: JudgeConfig) -> BaseChatModel:
    """The judge's chat model; a provider whose package or key is missing fails here, once."""
    llm = LLMConfig(provider=config.provider, model=config.model,
                    temperature=config.temperature, max_tokens=config.max_tokens)
    if config.base_url is None or config.provider == "demo":
        return create_chat_model(llm, timeout=config.timeout_s)
    spec = PROVIDERS[config.provider]
    try:
        cls = getattr(importlib.import_module(spec.module), spec.class_name)
    except ImportError:
        raise ProviderError(f"online_eval judge provider '{config.provider}' needs the "
                            f"{spec.package} package") from None
    kwargs: dict[str, Any] = {"model": config.model, "temperature": config.temperature,
                              "timeout": config.timeout_s, "max_retries": 0,
                              "base_url": config.base_url}
    if config.max_tokens is not None:
        kwargs[spec.max_tokens_arg] = config.max_tokens
    return cls(**kwargs)


def build_scorers(config: OnlineEvalConfig, model: BaseChatModel | None = None) -> list[Scorer]:
    """One scorer per spec (already checked by the config model)."""
    scorers: list[Scorer] = []
    for spec in config.scorers:
        kind, _, arg = spec.partition(":")
        if kind.strip().lower() == "regex":
            scorers.append(RegexMatch(arg))
        else:
            judge = config.judge_config
            scorers.append(LLMJudge(model if model is not None else judge_model(judge),
                                    criteria=judge.criteria))
    return scorers


def source_of(scorer: Scorer) -> str:
    """The assessment source kind: ``llm_judge`` for a model, ``code`` for the rest."""
    return "llm_judge" if getattr(scorer, "uses_model", False) else "code"
