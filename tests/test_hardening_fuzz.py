"""Property tests of untrusted input (issue #15): the spool reader and metadata -> run plan.

Arbitrary JSON never raises out of the spool reader, and whatever a spool file or
invocation metadata says, every key is one MLflow accepts and every artifact name
stays inside the run's folder.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configurable_agents.observability.capture.records import WorkflowRecord
from configurable_agents.observability.facts.build import FactOptions, build_facts
from configurable_agents.observability.sinks.mlflow.clean import clean_plan
from configurable_agents.observability.sinks.mlflow.keys import mlflow_key, safe_artifact_name
from configurable_agents.observability.sinks.mlflow.plan import PlanOptions, plan_for
from configurable_agents.observability.sinks.spool import BadSpoolFile, Spool, SpooledWorkflow

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
names = st.text(max_size=40) | st.sampled_from(
    ["../../x", "/etc/passwd", "..", ".", "a/../../b", "\\..\\..\\x", "mlflow.parentRunId",
     "a//b", "x\x00y", "\ud800", "~/.ssh/id_rsa"]
)
plans = st.fixed_dictionaries(
    {
        "run_name": st.text(max_size=20),
        "start_ms": st.integers(min_value=0, max_value=2**40),
        "end_ms": st.integers(min_value=0, max_value=2**40),
        "status": st.sampled_from(["FINISHED", "FAILED", "RUNNING", "weird"]),
        "params": st.dictionaries(names, st.text(max_size=30), max_size=4),
        "metrics": st.dictionaries(names, st.floats() | st.integers(), max_size=4),
        "tags": st.dictionaries(names, st.text(max_size=30), max_size=4),
        "artifacts": st.dictionaries(names, st.text(max_size=30), max_size=4),
    }
)
documents = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"version": st.sampled_from([1, 2, "1", None]), "experiment": st.text(max_size=20),
         "langchain_run_id": st.text(max_size=40) | st.uuids().map(str),
         "mlflow_run_id": st.none() | st.text(max_size=40),
         "plan": plans | json_values},
    ),
)


def assert_mlflow_safe(key: str) -> None:
    norm = posixpath.normpath(key)
    assert norm == key and norm != "." and not norm.startswith(("..", "/")), key
    assert 0 < len(key) <= 250


def assert_inside(name: str) -> None:
    root = Path("/run-root")
    assert (root / name).resolve().is_relative_to(root), name
    assert not Path(name).is_absolute()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents, raw_tail=st.binary(max_size=8))
def test_spool_reader_never_raises_and_never_escapes(document: Any, raw_tail: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp) / "spool")
        spool.directory.mkdir(mode=0o700)
        try:
            body = json.dumps(document).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError):
            body = b"{"
        (spool.directory / "0-doc.json").write_bytes(body)
        (spool.directory / "1-raw.json").write_bytes(body[: len(body) // 2] + raw_tail)
        items = list(spool.claim())
        assert len(items) == 2
        for item in items:
            if isinstance(item, BadSpoolFile):
                assert item.reason and "\n" not in item.reason
                continue
            assert isinstance(item, SpooledWorkflow)
            cleaned = clean_plan(item.plan)
            for plan in cleaned.walk():
                for key in (*plan.params, *plan.metrics, *plan.tags):
                    assert_mlflow_safe(key)
                assert not any(k.startswith("mlflow.") for k in plan.tags
                               if k != "mlflow.note.content")
                for name in plan.artifacts:
                    assert_inside(name)
            spool.done(item)
        assert os.listdir(spool.directory) in ([], ["rejected"])


@settings(max_examples=150, deadline=None)
@given(metadata=st.dictionaries(st.text(max_size=15) | st.sampled_from(
    ["ca_tags", "ca_params", "user_id", "tenant_id", "workflow_name"]), json_values, max_size=6),
    ca_tags=st.dictionaries(names, json_values, max_size=4),
    ca_params=st.dictionaries(names, json_values, max_size=4))
def test_metadata_never_makes_an_unsafe_run_plan(
    metadata: dict[str, Any], ca_tags: dict[str, Any], ca_params: dict[str, Any]
) -> None:
    metadata = {**metadata, "ca_tags": ca_tags, "ca_params": ca_params}
    workflow = WorkflowRecord(run_id=uuid.uuid4(), start_ns=1, name="wf", version=None,
                              kind="graph", metadata=metadata, tags=[])
    workflow.end_ns = 2
    options = FactOptions(run_name_template="{user_id}-{workflow_name}-{nope}")
    facts = build_facts(workflow, options, price_book=None)
    plan = clean_plan(plan_for(facts, PlanOptions()))
    for run in plan.walk():
        for key in (*run.params, *run.metrics, *run.tags):
            assert_mlflow_safe(key)
        for name in run.artifacts:
            assert_inside(name)
    assert plan.tags["langchain_run_id"] == str(workflow.run_id)
    assert plan.tags["configurable_agents.kind"] == "workflow"


@given(st.text())
def test_key_and_artifact_mappings_are_total(text: str) -> None:
    assert_mlflow_safe(mlflow_key(text))
    name = safe_artifact_name(text)
    if name is not None:
        assert_inside(name)
        assert safe_artifact_name(name) == name
