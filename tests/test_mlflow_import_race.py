"""The app's ``import mlflow`` never races ours, and a write that raises is spooled, not lost.

Issue #14 item 4: the MLflow sink used to import MLflow lazily on its worker; an app that
imported MLflow itself right after its first invocation got, in 4 of 5 fresh
interpreters, ``ImportError: cannot import name 'Run' from partially initialized module
'mlflow.entities'``, and the workflow was counted failed while ``flush()`` said True.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from configurable_agents.config import MLFlowConfig
from configurable_agents.names import Kind, Tag
from configurable_agents.observability import MLflowCallbackHandler
from configurable_agents.observability.sinks.mlflow.sink import MlflowSink
from tests.test_handler_behaviour import one_node_graph

APP = textwrap.dedent(
    """
    import sys
    from typing import TypedDict
    from langgraph.graph import END, START, StateGraph
    from configurable_agents.config import MLFlowConfig
    from configurable_agents.observability import MLflowCallbackHandler

    class State(TypedDict, total=False):
        n: int

    graph = StateGraph(State)
    graph.add_node("inc", lambda s: {"n": s["n"] + 1})
    graph.add_edge(START, "inc")
    graph.add_edge("inc", END)
    app = graph.compile()
    handler = MLflowCallbackHandler(MLFlowConfig(
        enabled=True, tracking_uri=sys.argv[1], experiment_name="race"))
    # MLflow is imported while the handler is built, before any worker thread exists.
    print("imported at build:", "mlflow.entities" in sys.modules)
    assert app.invoke({"n": 1}, {"callbacks": [handler]}) == {"n": 2}
    import mlflow  # the app's own import, at once: our worker is exporting now
    from mlflow.entities import Run  # noqa: F401
    ok = handler.flush(60)
    s = handler.stats()
    print(f"ok={ok} exported={s.exported} spooled={s.spooled} failed={s.failed} "
          f"errors={s.internal_errors}")
    """
)


def test_app_import_of_mlflow_after_first_invocation(tmp_path: Path):
    script = tmp_path / "app.py"
    script.write_text(APP, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for i in range(5):  # fresh interpreters: the race was 4 in 5
        store = f"sqlite:///{tmp_path / f'mlflow{i}.db'}"
        done = subprocess.run(
            [sys.executable, str(script), store], env=env, capture_output=True, text=True,
            timeout=240, cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "partially initialized" not in done.stderr
        assert "imported at build: True" in done.stdout, done.stdout
        assert done.stdout.strip().endswith(
            "ok=True exported=1 spooled=0 failed=0 errors=0"
        ), (done.stdout, done.stderr[-2000:])


class _ExportRaisesOnce(MlflowSink):
    """The real MLflow sink, except that its first export raises a non-MLflow error."""

    raised = False

    def export(self, facts):  # type: ignore[no-untyped-def]
        if not self.raised:
            self.raised = True
            raise AttributeError("partially initialized module 'mlflow' has no attribute")
        super().export(facts)


def test_export_that_raises_is_spooled_then_replayed(
    mlflow_store, experiment_name, mlflow_client
):
    config = MLFlowConfig(enabled=True, tracking_uri=mlflow_store, experiment_name=experiment_name)
    sink = _ExportRaisesOnce(config)
    handler = MLflowCallbackHandler(
        MLFlowConfig(enabled=False, tracking_uri=mlflow_store, experiment_name=experiment_name),
        sinks=[sink],
    )
    app = one_node_graph(lambda s: {"n": 1})
    assert app.invoke({}, {"callbacks": [handler]}) == {"n": 1}

    deadline = time.monotonic() + 60
    while handler.stats().pending_workflows and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = handler.stats().sinks["mlflow"]
    assert stats.spooled == 1 and stats.failed == 0, stats
    assert handler.flush(60), "MLflow is up: flush replays the spool and only then says True"
    exp = mlflow_client.get_experiment_by_name(experiment_name)
    runs = mlflow_client.search_runs([exp.experiment_id])
    assert [r.data.tags[Tag.KIND] for r in runs].count(Kind.WORKFLOW) == 1
