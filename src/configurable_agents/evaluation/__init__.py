"""Evaluation: datasets, scorers and ``evaluate()``, logged as MLflow evaluation runs.

    from configurable_agents.evaluation import evaluate, Contains
    result = evaluate(app, "examples/qa_dataset.jsonl", [Contains()],
                      tracking_uri="sqlite:///mlflow.db", experiment_name="qa",
                      workflow_name="qa_assistant", workflow_version="1.0.0",
                      output_key="answer")
    result.accuracy, result.cost_per_correct_usd, result.run_id
"""

from configurable_agents.evaluation.dataset import Dataset, DatasetError, Example, load_dataset
from configurable_agents.evaluation.results import EvaluationResult, ExampleResult
from configurable_agents.evaluation.runner import EvaluationError, evaluate
from configurable_agents.scoring import (
    CallableScorer,
    Contains,
    ExactMatch,
    JsonFieldMatch,
    NumericTolerance,
    RegexMatch,
    Score,
    Scorer,
    extract_output,
)
from configurable_agents.scoring.judge import LLMJudge

__all__ = [
    "CallableScorer",
    "Contains",
    "Dataset",
    "DatasetError",
    "EvaluationError",
    "EvaluationResult",
    "ExactMatch",
    "Example",
    "ExampleResult",
    "JsonFieldMatch",
    "LLMJudge",
    "NumericTolerance",
    "RegexMatch",
    "Score",
    "Scorer",
    "evaluate",
    "extract_output",
    "load_dataset",
]
