"""Scoring shared by offline evaluation (``evaluation``) and online evaluation (``online_eval``).

The scorers, the LLM judge, the example they grade and the answer they read, below both
packages: each imports them from here, statically (an import-linter contract keeps this
package free of evaluation, online evaluation and the observability layer).
"""

from configurable_agents.scoring.example import Example
from configurable_agents.scoring.judge import LLMJudge, parse_verdict
from configurable_agents.scoring.output import extract_output
from configurable_agents.scoring.scorers import (
    CORRECT_THRESHOLD,
    CallableScorer,
    Contains,
    ExactMatch,
    JsonFieldMatch,
    NumericTolerance,
    RegexMatch,
    Score,
    Scorer,
    as_scorer,
    builtin,
    normalize,
)

__all__ = [
    "CORRECT_THRESHOLD",
    "CallableScorer",
    "Contains",
    "ExactMatch",
    "Example",
    "JsonFieldMatch",
    "LLMJudge",
    "NumericTolerance",
    "RegexMatch",
    "Score",
    "Scorer",
    "as_scorer",
    "builtin",
    "extract_output",
    "normalize",
    "parse_verdict",
]
