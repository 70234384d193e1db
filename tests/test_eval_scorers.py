"""Built-in scorers and the LLM judge, on plain values (no MLflow needed)."""

from __future__ import annotations

import pytest

from configurable_agents.evaluation import (
    CallableScorer,
    Contains,
    ExactMatch,
    Example,
    JsonFieldMatch,
    LLMJudge,
    NumericTolerance,
    RegexMatch,
    Score,
)
from configurable_agents.evaluation.runner import extract_output
from configurable_agents.scoring import builtin
from tests.fakes import UsageChatModel, reply


def ex(expected: object) -> Example:
    return Example(id="1", inputs={"question": "q"}, expected=expected)


@pytest.mark.parametrize(
    ("scorer", "expected", "output", "value"),
    [
        (ExactMatch(), "Paris", " paris. ", 1.0),
        (ExactMatch(), "Paris", "Paris, France", 0.0),
        (ExactMatch(strict=True), "Paris", "paris", 0.0),
        (Contains(), "Leonardo da Vinci", "It was LEONARDO DA VINCI.", 1.0),
        (Contains(), "4", "Answer: 14", 0.0),
        (Contains(), "14", "Answer: 14", 1.0),
        (RegexMatch(r"^\d+$"), None, "42", 1.0),
        (RegexMatch(), r"Answer:\s*4\d", "Answer: 42", 1.0),
        (JsonFieldMatch("answer.city"), "Paris", '{"answer": {"city": "paris"}}', 1.0),
        (JsonFieldMatch("answer"), '{"answer": 3}', {"answer": 3}, 1.0),
        (JsonFieldMatch("answer"), "3", "not json", 0.0),
        (NumericTolerance(abs_tol=0.01), "3.14", "pi is about 3.141", 1.0),
        (NumericTolerance(), "1,000", "It costs 1,000 dollars", 1.0),
        (NumericTolerance(), "28", "I get 3", 0.0),
        (NumericTolerance(), "n/a", "3", 0.0),
    ],
)
def test_builtin_scorers(scorer, expected: object, output: object, value: float) -> None:
    assert scorer.score(ex(expected), output, {}).value == value


def test_callable_scorer_accepts_bool_number_and_score() -> None:
    def length_ok(output, expected, inputs):
        return len(output) <= len(expected) + 2

    assert CallableScorer(length_ok).name == "length_ok"
    assert CallableScorer(length_ok).score(ex("abc"), "abcd", {}).value == 1.0
    assert CallableScorer(lambda o, e, i: 0.25, name="q").score(ex(1), 1, {}).value == 0.25
    assert CallableScorer(lambda o, e, i: Score(0.5, "half"), name="s").score(
        ex(1), 1, {}).rationale == "half"
    with pytest.raises(TypeError, match="return a bool, a number or a Score"):
        CallableScorer(lambda o, e, i: "yes", name="bad").score(ex(1), 1, {})


def test_cli_specs_build_scorers_and_reject_bad_ones() -> None:
    assert isinstance(builtin("contains"), Contains)
    assert builtin("numeric:0.5").abs_tol == 0.5  # type: ignore[attr-defined]
    assert builtin("json_field:a.b").field == "a.b"  # type: ignore[attr-defined]
    for bad, message in [("regex:(", "invalid pattern"), ("json_field", "needs a field path"),
                         ("numeric:x", "must be a number"), ("bleu", "unknown scorer")]:
        with pytest.raises(ValueError, match=message):
            builtin(bad)


def test_llm_judge_reads_the_verdict() -> None:
    judge = LLMJudge(UsageChatModel(messages=iter([
        reply('{"verdict": "PASS", "rationale": "same city"}', 80, 5),
        reply("The year is off by one.\nVERDICT: FAIL", 80, 5),
        reply("I am not sure", 80, 5)])))
    assert judge.score(ex("Paris"), "paris", {}) == Score(1.0, "same city")
    assert judge.score(ex("1969"), "1970", {}) == Score(0.0, "The year is off by one.")
    unsure = judge.score(ex("x"), "y", {})
    assert unsure.value == 0.0 and unsure.unscorable


def test_extract_output_shapes() -> None:
    from langchain_core.messages import AIMessage

    assert extract_output({"answer": "A", "question": "q"}, "answer") == "A"
    assert extract_output(AIMessage("hi")) == "hi"
    assert extract_output({"messages": [AIMessage("a"), AIMessage("b")]}) == "b"
    assert extract_output("plain") == "plain"
