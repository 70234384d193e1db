"""Evaluation datasets: JSONL and CSV parsing, and errors that name the line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configurable_agents.evaluation import Dataset, DatasetError, load_dataset

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_dataset_loads_with_stable_identity() -> None:
    dataset = load_dataset(ROOT / "examples" / "qa_dataset.jsonl")
    assert len(dataset) == 20
    assert dataset.name == "qa_dataset"
    assert dataset.examples[0].id == "q01"
    assert dataset.examples[0].inputs == {"question": "What is the capital of France?"}
    assert dataset.examples[0].expected == "Paris"
    assert dataset.source.endswith("examples/qa_dataset.jsonl")
    assert dataset.digest == load_dataset(ROOT / "examples" / "qa_dataset.jsonl").digest


def test_jsonl_flat_rows_and_line_number_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", '{"question": "a?", "expected": "A"}\n\n'
                                      '{"question": "b?", "context": "x", "expected": 2}\n')
    dataset = load_dataset(path)
    assert [e.id for e in dataset] == ["1", "3"]
    assert dataset.examples[1].inputs == {"question": "b?", "context": "x"}
    assert dataset.examples[1].expected == 2


def test_csv_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "id,question,expected\nq1,\"a, b?\",A\nq2,c?,C\n")
    dataset = load_dataset(path)
    assert [(e.id, e.inputs, e.expected) for e in dataset] == [
        ("q1", {"question": "a, b?"}, "A"), ("q2", {"question": "c?"}, "C")]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("d.jsonl", '{"id": 1, "inputs": {"q": "a"}, "expected": "x"}\n{"id": 2, "inputs"',
         "d.jsonl line 2: invalid JSON"),
        ("d.jsonl", '{"id": 1, "inputs": {"q": "a"}, "expected": "x"}\n[1, 2]\n',
         "d.jsonl line 2: expected a JSON object, got list"),
        ("d.jsonl", '{"id": 1, "inputs": {"q": "a"}}\n',
         "d.jsonl line 1: field 'expected' is missing"),
        ("d.jsonl", '{"id": 1, "inputs": "q", "expected": 1}\n',
         "d.jsonl line 1: field 'inputs' must be a non-empty object"),
        ("d.jsonl", '{"id": [1], "inputs": {"q": 1}, "expected": 1}\n',
         "d.jsonl line 1: field 'id' must be a string or an integer"),
        ("d.jsonl", '{"id": "a", "q": 1, "expected": 1}\n\n{"id": "a", "q": 2, "expected": 2}\n',
         "d.jsonl line 3: field 'id': duplicate id 'a' (first on line 1)"),
        ("d.jsonl", '{"id": "a", "expected": 1}\n', "d.jsonl line 1: no input fields"),
        ("d.csv", "id,question\nq1,a\n",
         "d.csv line 1: field 'expected' is missing from the header"),
        ("d.csv", "id,question,expected\nq1,a,A\nq2,b\n",
         "d.csv line 3: 2 fields, the header has 3"),
        ("d.csv", "id,question,expected\nq1,a,A\nq1,b,B\n",
         "d.csv line 3: field 'id': duplicate id 'q1' (first on line 2)"),
        ("d.txt", "x", "unsupported dataset format '.txt'"),
        ("d.jsonl", "\n\n", "the dataset has no examples"),
    ],
)
def test_bad_files_name_the_line_and_field(tmp_path: Path, name: str, text: str,
                                           message: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset file not found"):
        load_dataset(tmp_path / "nope.jsonl")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(),
                                max_size=4), max_size=5))
def test_untrusted_rows_load_or_fail_with_one_line(rows: list[dict[str, object]]) -> None:
    try:
        dataset = Dataset.from_records(rows, name="untrusted")
    except DatasetError as exc:
        assert str(exc).startswith("untrusted row ")
        assert "\n" not in str(exc)
    else:
        assert all(e.inputs for e in dataset)
        assert len({e.id for e in dataset}) == len(dataset)
        json.dumps([e.inputs for e in dataset])
