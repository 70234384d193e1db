"""Configuration of online evaluation (``observability.online_eval``).

Scorers are the ``eval`` command's scorer specs. A live workflow has no expected answer, so
only the kinds that judge an output on its own are accepted: ``regex:PATTERN`` (the pattern
given here) and ``llm_judge`` (graded against ``judge.criteria``). Checked here, once, so a
typo fails when the config loads, not on the first sampled workflow.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from configurable_agents.config.base import StrictModel

ONLINE_SCORER_KINDS = ("regex", "llm_judge")
DEFAULT_ONLINE_CRITERIA = (
    "No expected answer is given: the answer passes if it addresses the inputs directly, "
    "is plausible and is not an error message, a refusal or empty."
)


class JudgeConfig(StrictModel):
    """The judge model: any provider the runner supports; ``base_url`` for gateways/proxies."""

    provider: Literal["google", "openai", "anthropic", "demo"] = "openai"
    model: str = "gpt-4o-mini"
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=200, ge=1)
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    criteria: str = Field(default=DEFAULT_ONLINE_CRITERIA, min_length=1, max_length=4000)


class OnlineEvalConfig(StrictModel):
    """Score a sample of live, finished workflows off the caller's thread.

    Scores become assessments on the workflow's MLflow trace (source CODE or LLM_JUDGE),
    ``quality/<scorer>`` metrics on its run and, with the Prometheus sink on, the
    ``configurable_agents_quality_score`` histogram. The judge's own calls are logged as
    runs of workflow ``<name>_judge``: its tokens and cost stay apart from the workflow's.
    """

    enabled: bool = False
    sample_rate: float = Field(default=0.1, ge=0.0, le=1.0,
                               description="Share of finished workflows scored (by run id).")
    scorers: list[str] = Field(default_factory=lambda: ["llm_judge"], min_length=1,
                               max_length=10)
    judge: JudgeConfig | None = None
    output_key: str | None = Field(default=None,
                                   description="Output field to score (default: the last).")
    queue_size: int = Field(default=100, ge=1, le=100_000,
                            description="Workflows waiting to be scored; past it, dropped.")
    max_pending_writes: int = Field(default=1000, ge=1, le=100_000,
                                    description="Scores waiting for their run and trace.")
    write_wait_s: float = Field(default=120.0, gt=0, le=3600,
                                description="How long a score waits for its run and trace.")

    @field_validator("scorers")
    @classmethod
    def _known_scorers(cls, specs: list[str]) -> list[str]:
        names: set[str] = set()
        for spec in specs:
            kind, _, arg = spec.partition(":")
            kind = kind.strip().lower()
            if kind not in ONLINE_SCORER_KINDS:
                raise ValueError(
                    f"online scorer {spec!r}: live workflows have no expected answer; use "
                    "regex:PATTERN or llm_judge")
            if kind == "regex":
                if not arg:
                    raise ValueError("online scorer regex needs a pattern: regex:PATTERN")
                try:
                    re.compile(arg)
                except re.error as exc:
                    raise ValueError(f"online scorer {spec!r}: invalid pattern ({exc})") from None
            if kind in names:
                raise ValueError(f"online scorer {kind!r} is listed twice")
            names.add(kind)
        return specs

    @property
    def judge_config(self) -> JudgeConfig:
        """The judge block, or the defaults when ``llm_judge`` is listed without one."""
        return self.judge if self.judge is not None else JudgeConfig()
