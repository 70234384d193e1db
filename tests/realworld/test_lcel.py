"""LCEL at the root: ``with_fallbacks``, ``with_retry``, ``RunnableParallel``, ``batch``,
``abatch`` and ``stream``, each one parent run per top-level call.

Adapted from langchain-ai/langchain ``libs/core/tests/unit_tests/runnables/test_fallbacks.py``
(``test_fallbacks``, ``test_fallbacks_stream``, batch over a failing primary) and
``libs/core/tests/unit_tests/runnables/test_runnable.py`` (``with_retry``,
``RunnableParallel``); the models are fakes that report usage.
"""

from __future__ import annotations

import asyncio

from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel

from configurable_agents.names import Metric, Status, Tag
from tests.fakes import flaky
from tests.realworld.harness import Failing, ReportingModel, check, handler_for


def test_fallback_at_the_root_is_one_parent(mlflow_store, experiment_name, mlflow_client):
    backup = ReportingModel(script=["from backup"])
    chain = Failing().with_fallbacks([backup])
    handler = handler_for(mlflow_store, experiment_name)

    out = chain.invoke("hi", config={"callbacks": [handler]})

    assert out.content == "from backup"
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=backup.reported)
    assert logged.parent.data.metrics[Metric.FALLBACK_COUNT] == 1
    assert logged.parent.data.metrics[Metric.LLM_CALLS] == 2  # the failed attempt is inside
    assert logged.parent.data.tags[Tag.FALLBACK_MODEL] == "gemini-2.5-flash"  # who answered


def test_batch_and_abatch_of_fallbacks(mlflow_store, experiment_name, mlflow_client):
    backup = ReportingModel(script=["ok"])
    chain = ChatPromptTemplate.from_template("{q}") | Failing().with_fallbacks([backup])
    handler = handler_for(mlflow_store, experiment_name)
    inputs = [{"q": f"question {i}"} for i in range(27)]

    outs = chain.batch(inputs, config={"callbacks": [handler], "max_concurrency": 4})
    outs += asyncio.run(chain.abatch(inputs, config={"callbacks": [handler]}))

    assert [o.content for o in outs] == ["ok"] * 54
    logged = check(mlflow_client, experiment_name, handler, calls=54, tokens=backup.reported)
    assert {p.data.metrics[Metric.FALLBACK_COUNT] for p in logged.parents} == {1}


def test_batch_on_fallbacks_itself(mlflow_store, experiment_name, mlflow_client):
    backup = ReportingModel(script=["ok"])
    chain = Failing().with_fallbacks([backup])
    handler = handler_for(mlflow_store, experiment_name)
    outs = chain.batch(["a", "b", "c"], config={"callbacks": [handler]})
    assert [o.content for o in outs] == ["ok"] * 3
    check(mlflow_client, experiment_name, handler, calls=3, tokens=backup.reported)


def test_stream_of_fallbacks(mlflow_store, experiment_name, mlflow_client):
    backup = ReportingModel(script=["streamed from backup"])
    chain = Failing().with_fallbacks([backup])
    handler = handler_for(mlflow_store, experiment_name)
    text = "".join(c.content for c in chain.stream("hi", config={"callbacks": [handler]}))
    assert text == "streamed from backup"
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=backup.reported)
    assert logged.parent.data.metrics[Metric.FALLBACK_COUNT] == 1
    assert logged.parent.data.tags[Tag.FALLBACK_MODEL] == "gemini-2.5-flash"


def test_all_fallbacks_fail_is_one_failed_parent(mlflow_store, experiment_name, mlflow_client):
    chain = Failing().with_fallbacks([Failing()])
    handler = handler_for(mlflow_store, experiment_name)
    try:
        chain.invoke("hi", config={"callbacks": [handler]})
    except ConnectionError as exc:
        assert str(exc) == "primary provider down"
    else:  # pragma: no cover - the app's exception must be unchanged
        raise AssertionError("the primary's error must reach the app")
    logged = check(mlflow_client, experiment_name, handler, calls=1, statuses={Status.FAILED: 1})
    assert logged.parent.data.metrics[Metric.FALLBACK_COUNT] == 1
    assert Tag.FALLBACK_MODEL not in logged.parent.data.tags  # nobody answered


def test_parallel_and_retry_at_the_root(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=["x"])
    fail_once = flaky(1)

    def shaky(text: str) -> str:
        fail_once()
        return text

    chain = RunnableParallel(
        a=model, b=model, c=RunnableLambda(shaky).with_retry(wait_exponential_jitter=False)
    )
    handler = handler_for(mlflow_store, experiment_name)
    out = chain.invoke("hi", config={"callbacks": [handler]})
    assert out["a"].content == "x" and out["c"] == "hi"
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=model.reported)
    assert logged.parent.data.metrics[Metric.RETRY_COUNT] == 1
    assert logged.parent.data.metrics[Metric.LLM_CALLS] == 2
