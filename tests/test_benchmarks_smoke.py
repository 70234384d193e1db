"""The benchmark harness runs end to end with tiny counts and produces its documented shape.

Behaviour, not timings: the numbers of a one-round run mean nothing, but every section,
mode and target must be there, the JSON must be valid, and the generated markdown must
replace only its own block of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks import report
from benchmarks.modes import CountingHandler, all_modes
from benchmarks.run import Plan, _clean, run
from benchmarks.workloads import article_writer, sequential_chain
from mlflow.tracking import MlflowClient


@pytest.fixture(scope="module")
def results(mlflow_store: str) -> dict:
    return run(Plan.quick(), store=mlflow_store, progress=False)


def test_every_section_has_its_figures(results: dict) -> None:
    assert set(results) >= {"machine", "plan", "latency", "throughput", "scaling", "memory",
                            "targets", "seconds"}
    machine = results["machine"]
    assert machine["nproc"] >= 1 and machine["python"].count(".") == 2
    assert machine["packages"]["mlflow"] and machine["packages"]["langgraph"]

    (article,) = results["latency"]
    assert article["workload"] == "article_writer" and article["rounds"] == 1
    assert set(article["modes"]) == {"none", "noop", "ours_async"}
    ours = article["modes"]["ours_async"]
    assert ours["wall_ms"]["n"] == 1 and ours["wall_ms"]["median"] > 0
    assert ours["persisted_ms"]["median"] >= ours["wall_ms"]["median"]
    assert article["modes"]["none"]["persisted_ms"] is None  # nothing to persist
    assert isinstance(ours["overhead_ms"], float)

    tp = results["throughput"]
    assert tp["blocks"] == 1 and set(tp["ratio_to_baseline"]) == {"ours_async"}
    assert tp["workflows_per_s"]["baseline"]["median"] > 0

    assert list(results["scaling"]) == ["2", "4"]
    small, large = results["scaling"]["2"], results["scaling"]["4"]
    assert large["events"] > small["events"] > 0
    assert small["ours_vs_smallest"] == pytest.approx(1.0)

    caller, persisted = results["memory"]["caller"], results["memory"]["persisted"]
    assert caller["invocations"] == 4 and len(caller["trace"]) == 4
    assert caller["after_flush"]["active_runs"] == 0
    assert caller["after_flush"]["pending_workflows"] == 0
    assert persisted["flushed"] is True
    assert persisted["after_flush"]["exported"] >= persisted["invocations"]
    assert persisted["after_flush"]["failed"] == 0

    # One target per issue-#8 goal measurable from these sections (autolog not run here).
    names = [t["target"] for t in results["targets"]]
    assert any("no-op" in n for n in names) and any("throughput" in n for n in names)
    assert any("per-event" in n for n in names) and any("RSS" in n for n in names)
    assert all(isinstance(t["met"], bool) for t in results["targets"])
    json.dumps(results, allow_nan=False)  # valid JSON: NaN became null


def test_persisting_modes_really_wrote_runs(results: dict, mlflow_store: str) -> None:
    client = MlflowClient(mlflow_store)
    experiments = [e for e in client.search_experiments() if e.name.startswith("bench-")]
    written = {
        e.name.rsplit("-", 1)[-1]: len(client.search_runs([e.experiment_id]))
        for e in experiments
    }
    # article writer: 1 warm-up-free round -> one parent + two node runs.
    assert written["ours_async"] == 3
    assert written["baseline"] == 3 * (1 + 1)  # warm-up workflow + one block of one


def test_markdown_block_replaced_and_prose_kept(results: dict, tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(f"# Benchmarks\n\nProse before.\n\n{report.BEGIN}\nold\n{report.END}\n"
                   "\nProse after.\n", encoding="utf-8")
    generated = report.render(results)
    report.write_doc(doc, generated)
    report.write_doc(doc, generated)  # idempotent
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nProse before.") and text.endswith("Prose after.\n")
    assert "old" not in text and text.count(report.BEGIN) == 1
    assert text.index("### Targets") < text.index("### Absolute caller latency")
    assert "| ours, async |" in text


def test_counting_handler_sees_every_event() -> None:
    counter = CountingHandler()
    article_writer().invoke([counter])
    two = counter.events
    counter = CountingHandler()
    sequential_chain(4).invoke([counter])
    # graph start/end + per node: node chain start/end + chat model start/end
    assert counter.events == 2 + 4 * 4
    assert two > 8


def test_modes_and_cleaning() -> None:
    names = [m.name for m in all_modes()]
    assert names[:3] == ["none", "noop", "ours_async"]
    assert {"ours_sync", "ours_redact", "autolog", "community", "fluent_sketch"} <= set(names)
    assert _clean({"a": float("nan"), "b": [1.0, float("nan")]}) == {"a": None, "b": [1.0, None]}
