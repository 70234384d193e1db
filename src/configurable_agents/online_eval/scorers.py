"""The online scorers, built from ``observability.online_eval``: the ``eval`` command's kinds.

``regex:PATTERN`` is :class:`RegexMatch`; ``llm_judge`` is :class:`LLMJudge` on the configured
model (``base_url`` points an OpenAI-compatible client at a gateway). The judge's calls run
with their own handler (MLflow only, never online evaluation again), so they are logged as
runs of ``<workflow>_judge`` and their tokens and cost stay apart from the workflow's.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from configurable_agents.config.online_eval_config import JudgeConfig, OnlineEvalConfig
from configurable_agents.config.schema import LLMConfig
from configurable_agents.runtime.providers import create_chat_model
from configurable_agents.scoring import LLMJudge, RegexMatch, Scorer


def judge_model(config: JudgeConfig) -> BaseChatModel:
    """The judge's chat model; a provider whose package or key is missing fails here, once.

    With ``base_url`` (a gateway or proxy) only the provider's package is required: the
    endpoint may take its own credentials.
    """
    llm = LLMConfig(provider=config.provider, model=config.model,
                    temperature=config.temperature, max_tokens=config.max_tokens)
    return create_chat_model(llm, timeout=config.timeout_s, base_url=config.base_url)


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
