"""The evaluation scorers: defined in :mod:`configurable_agents.scoring.scorers`, shared with
online evaluation; this module keeps the ``configurable_agents.evaluation.scorers`` path."""

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
    "JsonFieldMatch",
    "NumericTolerance",
    "RegexMatch",
    "Score",
    "Scorer",
    "as_scorer",
    "builtin",
    "normalize",
]
