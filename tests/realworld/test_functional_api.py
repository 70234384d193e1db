"""The functional API: ``@entrypoint`` with ``@task`` s, run in parallel and resumed.

Adapted from langchain-ai/langgraph ``libs/langgraph/tests/test_pregel.py``
(``test_imp_task`` / ``test_imp_nested``: an entrypoint mapping a task over inputs and
joining the futures) and the "Functional API" how-to in ``docs/docs/how-tos/use-functional-api.md``.
"""

from __future__ import annotations

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.func import entrypoint, task

from tests.realworld.harness import ReportingModel, check, handler_for


def test_entrypoint_with_parallel_tasks(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=["a joke"])

    @task
    def write_joke(topic: str) -> str:
        return f"{topic}: {model.invoke(topic).content}"

    @entrypoint(checkpointer=InMemorySaver())
    def jokes(topics: list[str]) -> list[str]:
        futures = [write_joke(t) for t in topics]
        return [f.result() for f in futures]

    handler = handler_for(mlflow_store, experiment_name)
    config = {"callbacks": [handler], "configurable": {"thread_id": "1"}}
    assert jokes.invoke(["cats", "dogs", "owls"], config) == [
        "cats: a joke", "dogs: a joke", "owls: a joke",
    ]
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=model.reported)
    assert logged.node_ids(logged.parent) == ["jokes", "write_joke", "write_joke", "write_joke"]
