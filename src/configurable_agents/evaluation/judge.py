"""The LLM judge: defined in :mod:`configurable_agents.scoring.judge`, shared with online
evaluation; this module keeps the ``configurable_agents.evaluation.judge`` path."""

from configurable_agents.scoring.judge import DEFAULT_CRITERIA, LLMJudge, parse_verdict

__all__ = ["DEFAULT_CRITERIA", "LLMJudge", "parse_verdict"]
