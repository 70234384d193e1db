"""Eight threads sharing one handler, each invoking the same graph many times.

Adapted from mlflow/mlflow ``tests/langchain/test_langchain_autolog.py``
(``test_autolog_with_concurrent_invocations``-style: one chain invoked from a thread pool,
each invocation traced on its own, mlflow#15511). Run names must tell runs apart.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from configurable_agents.names import Tag
from tests.realworld.harness import ReportingModel, check, handler_for
from tests.test_handler_shapes import article_writer


def test_eight_threads_one_handler(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=["text"])
    graph = article_writer(model)
    handler = handler_for(mlflow_store, experiment_name, workflow_name="article_writer",
                          workflow_version="3")

    def run(i: int) -> str:
        out = graph.invoke({"topic": f"t{i}"}, {"callbacks": [handler],
                                                 "metadata": {"user_id": f"u{i % 8}"}})
        return out["article"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(48)))

    assert results == ["text"] * 48
    logged = check(mlflow_client, experiment_name, handler, calls=48, tokens=model.reported)
    assert all(logged.node_ids(p) == ["research", "write"] for p in logged.parents)
    names = {p.info.run_name for p in logged.parents}
    assert len(names) == 48, "run names tell runs apart"
    for parent in logged.parents:
        short_id = parent.data.tags[Tag.LANGCHAIN_RUN_ID].replace("-", "")[-8:]
        assert parent.info.run_name == f"article_writer v3 {short_id}"
