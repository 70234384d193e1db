"""Retries, failures, interrupts, concurrency, modes and options of MLflowCallbackHandler."""

import asyncio
import json
import threading
import uuid
from typing import Any, TypedDict

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, RetryPolicy, interrupt
from mlflow.tracking import MlflowClient

from configurable_agents.config import MLFlowConfig
from configurable_agents.observability import MLflowCallbackHandler
from tests.fakes import flaky, repeating
from tests.test_handler_shapes import article_writer, artifact_text, children, make_handler, runs_of
from tests.test_traces import assert_traces_linked_exactly


class State(TypedDict, total=False):
    text: str
    n: int


def one_node_graph(fn: Any, name: str = "work", **node_kwargs: Any) -> Any:
    graph = StateGraph(State)
    graph.add_node(name, fn, **node_kwargs)
    graph.add_edge(START, name)
    graph.add_edge(name, END)
    return graph.compile()


# ---- retries from all three sources ---------------------------------------------------------


def test_retry_policy_rerun_is_one_node_run_with_retries(
    mlflow_store, experiment_name, mlflow_client
):
    model = repeating("ok", 10, 5)
    fail_twice = flaky(2)

    def work(state: State) -> State:
        fail_twice()
        return {"text": model.invoke("go").content}

    app = one_node_graph(
        work,
        retry_policy=RetryPolicy(
            max_attempts=3, initial_interval=0.001, jitter=False, retry_on=RuntimeError
        ),
    )
    handler = make_handler(mlflow_store, experiment_name)
    assert app.invoke({}, config={"callbacks": [handler]}) == {"text": "ok"}
    assert handler.flush(60)
    (parent,), nodes = runs_of(mlflow_client, experiment_name)
    assert len(nodes) == 1, "a node that succeeded on its 3rd attempt is ONE nested run"
    assert nodes[0].data.metrics["retries"] == 2
    assert nodes[0].info.status == "FINISHED"
    assert parent.data.metrics["retry_count"] == 2
    assert parent.data.metrics["status"] == 1


def test_with_retry_attempts_are_counted(mlflow_store, experiment_name, mlflow_client):
    fail_once = flaky(1)

    def step(x: str) -> str:
        fail_once()
        return x

    retrying = RunnableLambda(step).with_retry(stop_after_attempt=3, wait_exponential_jitter=False)

    def work(state: State) -> State:
        return {"text": retrying.invoke("fine")}

    handler = make_handler(mlflow_store, experiment_name)
    assert one_node_graph(work).invoke({}, config={"callbacks": [handler]}) == {"text": "fine"}
    assert handler.flush(60)
    (parent,), (node,) = runs_of(mlflow_client, experiment_name)
    assert node.data.metrics["retries"] == 1
    assert parent.data.metrics["retry_count"] == 1


def test_on_retry_events_are_counted(mlflow_store, experiment_name, mlflow_client):
    """Older integrations (tenacity inside the model client) report retries via on_retry."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    class RetryingModel(GenericFakeChatModel):
        def _generate(
            self,
            messages: Any,
            stop: Any = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> Any:
            if run_manager:
                for _ in range(2):
                    run_manager.on_retry(retry_state=None)  # type: ignore[arg-type]
            return super()._generate(messages, stop, run_manager, **kwargs)

    model = RetryingModel(messages=iter(["a"]))

    def work(state: State) -> State:
        return {"text": model.invoke("go").content}

    handler = make_handler(mlflow_store, experiment_name)
    one_node_graph(work).invoke({}, config={"callbacks": [handler]})
    assert handler.flush(60)
    (parent,), (node,) = runs_of(mlflow_client, experiment_name)
    assert node.data.metrics["retries"] == 2
    assert parent.data.metrics["retry_count"] == 2


# ---- failures and interrupts ----------------------------------------------------------------


class BoomError(ValueError):
    pass


def test_failing_node_marks_runs_failed_and_reraises_unchanged(
    mlflow_store, experiment_name, mlflow_client
):
    error = BoomError("the model said no")

    def work(state: State) -> State:
        raise error

    handler = make_handler(mlflow_store, experiment_name)
    with pytest.raises(BoomError) as caught:
        one_node_graph(work).invoke({}, config={"callbacks": [handler]})
    assert caught.value is error
    assert handler.flush(60)
    (parent,), (node,) = runs_of(mlflow_client, experiment_name)
    assert parent.info.status == "FAILED"
    assert node.info.status == "FAILED"
    assert parent.data.metrics["status"] == 0
    assert node.data.metrics["status"] == 0
    assert parent.data.tags["error_type"] == "BoomError"
    assert parent.data.tags["error_message"] == "the model said no"
    assert "BoomError: the model said no" in artifact_text(mlflow_client, parent, "error.txt")
    assert "raise error" in artifact_text(mlflow_client, node, "error.txt")


def test_graph_interrupt_is_not_a_failure_and_resume_shares_thread(
    mlflow_store, experiment_name, mlflow_client
):
    def ask(state: State) -> State:
        answer = interrupt("approve?")
        return {"text": f"approved: {answer}"}

    graph = StateGraph(State)
    graph.add_node("ask_human", ask)
    graph.add_edge(START, "ask_human")
    graph.add_edge("ask_human", END)
    app = graph.compile(checkpointer=InMemorySaver())
    handler = make_handler(mlflow_store, experiment_name)
    # LangGraph copies configurable.thread_id into the callback metadata by itself.
    config = {"callbacks": [handler], "configurable": {"thread_id": "conv-42"}}
    first = app.invoke({"text": ""}, config=config)
    assert "__interrupt__" in first
    second = app.invoke(Command(resume="yes"), config=config)
    assert second["text"] == "approved: yes"
    assert handler.flush(60)
    parents, _ = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 2
    by_status = {p.data.tags["status"]: p for p in parents}
    interrupted = by_status["INTERRUPTED"]
    assert interrupted.info.status == "FINISHED"
    assert interrupted.data.tags["interrupted"] == "true"
    assert interrupted.data.metrics["status"] == 1
    resumed = by_status["FINISHED"]
    assert {p.data.tags["thread_id"] for p in parents} == {"conv-42"}
    found = mlflow_client.search_runs(
        [interrupted.info.experiment_id],
        filter_string="tags.thread_id = 'conv-42' and tags.`configurable_agents.kind` = 'workflow'",
    )
    assert {r.info.run_id for r in found} == {interrupted.info.run_id, resumed.info.run_id}


# ---- concurrency: one handler, many invocations ------------------------------------------------


def _assert_each_invocation_exact(client: MlflowClient, experiment: str, count: int) -> None:
    parents, nodes = runs_of(client, experiment)
    assert len(parents) == count
    assert len(nodes) == 2 * count
    for parent in parents:
        topic = json.loads(artifact_text(client, parent, "inputs.json"))["topic"]
        n = int(topic.split("-")[1])
        mine = children(nodes, parent)
        assert set(mine) == {"research", "write"}
        # Each invocation's model reports tokens unique to it: sums prove no mix-ups.
        assert parent.data.metrics["total_input_tokens"] == 2 * (1000 + n)
        assert mine["write"].data.metrics["input_tokens"] == 1000 + n
        assert parent.data.tags["user_id"] == f"user-{n}"


def test_32_threads_share_one_handler(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(mlflow_store, experiment_name)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            app = article_writer(repeating("t", 1000 + n, 5))
            app.invoke(
                {"topic": f"topic-{n}"},
                config={"callbacks": [handler], "metadata": {"user_id": f"user-{n}"}},
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert handler.flush(120)
    assert handler.stats().internal_errors == 0
    _assert_each_invocation_exact(mlflow_client, experiment_name, 32)
    # The traces too: each linked to its own run (MLflow's autolog gets this wrong).
    assert_traces_linked_exactly(mlflow_client, experiment_name, 32)
    assert handler.stats().active_runs == 0


def test_asyncio_gather_100_ainvoke(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(mlflow_store, experiment_name)

    async def main() -> None:
        await asyncio.gather(
            *(
                article_writer(repeating("t", 1000 + n, 5)).ainvoke(
                    {"topic": f"topic-{n}"},
                    config={"callbacks": [handler], "metadata": {"user_id": f"user-{n}"}},
                )
                for n in range(100)
            )
        )

    asyncio.run(main())
    assert handler.flush(180)
    _assert_each_invocation_exact(mlflow_client, experiment_name, 100)
    assert_traces_linked_exactly(mlflow_client, experiment_name, 100)


def test_abatch_gets_one_parent_per_input(mlflow_store, experiment_name, mlflow_client):
    class PerTopicModel:
        """Routes each prompt to the model of its topic, so token sums identify invocations."""

        def __init__(self) -> None:
            self.models = {n: repeating("t", 1000 + n, 5) for n in range(8)}

        def invoke(self, prompt: Any, config: Any = None) -> Any:
            text = prompt if isinstance(prompt, str) else str(prompt)
            n = next(k for k in sorted(self.models, reverse=True) if f"topic-{k}" in text)
            return self.models[n].invoke(prompt, config)

    class TopicState(TypedDict, total=False):
        topic: str
        research: str
        article: str

    router = PerTopicModel()

    def research(state: TopicState) -> TopicState:
        return {"research": router.invoke(f"Research {state['topic']}").content}

    def write(state: TopicState) -> TopicState:
        return {"article": router.invoke(f"Write {state['topic']}").content}

    graph = StateGraph(TopicState)
    graph.add_node("research", research)
    graph.add_node("write", write)
    graph.add_edge(START, "research")
    graph.add_edge("research", "write")
    graph.add_edge("write", END)
    app = graph.compile()
    handler = make_handler(mlflow_store, experiment_name)
    inputs = [{"topic": f"topic-{n}"} for n in range(8)]
    configs = [{"callbacks": [handler], "metadata": {"user_id": f"user-{n}"}} for n in range(8)]
    asyncio.run(app.abatch(inputs, config=configs))
    assert handler.flush(60)
    _assert_each_invocation_exact(mlflow_client, experiment_name, 8)


# ---- modes and options ------------------------------------------------------------------------


def test_sync_mode_writes_before_invoke_returns(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(mlflow_store, experiment_name, async_logging=False)
    article_writer(repeating("t", 10, 5)).invoke({"topic": "x"}, config={"callbacks": [handler]})
    # No flush: the runs must already be there.
    parents, nodes = runs_of(mlflow_client, experiment_name)
    assert len(parents) == 1 and len(nodes) == 2
    assert parents[0].info.status == "FINISHED"


def test_log_artifacts_false_logs_no_artifacts(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(mlflow_store, experiment_name, log_artifacts=False)
    article_writer(repeating("t", 10, 5)).invoke({"topic": "x"}, config={"callbacks": [handler]})
    assert handler.flush(60)
    parents, nodes = runs_of(mlflow_client, experiment_name)
    for run in parents + nodes:
        assert mlflow_client.list_artifacts(run.info.run_id) == []
    assert parents[0].data.metrics["total_input_tokens"] == 20


def test_run_name_template_resolves_per_invocation(mlflow_store, experiment_name, mlflow_client):
    handler = make_handler(
        mlflow_store,
        experiment_name,
        workflow_name="article_writer",
        run_name="{workflow_name}-{user_id}-{date}",
    )
    app = article_writer(repeating("t", 10, 5))
    for user in ("ann", "bob"):
        app.invoke({"topic": "x"}, config={"callbacks": [handler], "metadata": {"user_id": user}})
    assert handler.flush(60)
    parents, _ = runs_of(mlflow_client, experiment_name)
    names = sorted(p.info.run_name for p in parents)
    assert [n.rsplit("-", 3)[0] for n in names] == ["article_writer-ann", "article_writer-bob"]
    assert all(len(n.rsplit("-", 3)[1]) == 4 for n in names)  # the year of {date}


def test_long_params_are_truncated_with_full_value_in_artifact(
    mlflow_store, experiment_name, mlflow_client
):
    long_value = "x" * 9000
    handler = make_handler(mlflow_store, experiment_name, params={"system_prompt": long_value})
    article_writer(repeating("t", 10, 5)).invoke({"topic": "x"}, config={"callbacks": [handler]})
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    value = parent.data.params["system_prompt"]
    assert len(value) == 6000
    assert value.endswith("...[truncated; full value in params/system_prompt.txt]")
    assert artifact_text(mlflow_client, parent, "params/system_prompt.txt") == long_value


def test_disabled_handler_is_inert(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    handler = MLflowCallbackHandler(
        MLFlowConfig(enabled=False, tracking_uri=f"sqlite:///{tmp_path}/x.db")
    )
    result = article_writer(repeating("t", 10, 5)).invoke(
        {"topic": "x"}, config={"callbacks": [handler]}
    )
    assert result["article"] == "t"
    assert handler.flush(5)
    assert handler.stats().queued == 0
    assert handler.stats().active_runs == 0
    assert list(tmp_path.iterdir()) == []  # no database, no mlruns


@pytest.mark.internal_errors
def test_handler_internal_error_is_counted_never_raised(
    mlflow_store, experiment_name, mlflow_client
):
    handler = make_handler(mlflow_store, experiment_name)

    class Exploding(dict):
        def __iter__(self):  # breaks the shallow copy the handler takes of node inputs
            raise RuntimeError("cannot iterate")

        def keys(self):
            raise RuntimeError("cannot iterate")

    # A bad callback payload straight into the handler: it must swallow and count it.
    handler.on_chain_start(None, Exploding(a=1), run_id=uuid.uuid4())
    assert handler.stats().internal_errors == 1
    result = article_writer(repeating("t", 10, 5)).invoke(
        {"topic": "x"}, config={"callbacks": [handler]}
    )
    assert result["article"] == "t"
    handler.flush(60)


def test_unreachable_backend_never_breaks_the_app(experiment_name):
    handler = MLflowCallbackHandler(
        MLFlowConfig(
            enabled=True, tracking_uri="http://127.0.0.1:9", experiment_name=experiment_name
        )
    )
    result = article_writer(repeating("t", 10, 5)).invoke(
        {"topic": "x"}, config={"callbacks": [handler]}
    )
    assert result["article"] == "t"
    handler.close(timeout=0.1)


def test_state_is_freed_after_export(mlflow_store, experiment_name):
    handler = make_handler(mlflow_store, experiment_name, log_artifacts=False)
    app = article_writer(repeating("t", 10, 5))
    for _ in range(50):
        app.invoke({"topic": "x"}, config={"callbacks": [handler]})
    assert handler.flush(120)
    stats = handler.stats()
    assert stats.active_runs == 0
    assert stats.pending_workflows == 0
    assert stats.exported == 50


def test_custom_node_metrics_and_node_metadata(mlflow_store, experiment_name, mlflow_client):
    from langchain_core.callbacks import dispatch_custom_event

    def work(state: State) -> State:
        dispatch_custom_event("ca_node_metrics", {"validation_failures": 2})
        return {"text": "done"}

    graph = StateGraph(State)
    graph.add_node(
        "work",
        work,
        metadata={
            "ca_node_params": {"node_model": "gemini-2.5-pro", "prompt_template_sha": "abc123"},
            "ca_node_artifacts": {"prompt_template.txt": "Write about {state.topic}"},
        },
    )
    graph.add_edge(START, "work")
    graph.add_edge("work", END)
    handler = make_handler(mlflow_store, experiment_name)
    graph.compile().invoke(
        {},
        config={
            "callbacks": [handler],
            "metadata": {"ca_params": {"prompts_sha": "fff"}, "ca_tags": {"demo_model": "true"}},
        },
    )
    assert handler.flush(60)
    (parent,), (node,) = runs_of(mlflow_client, experiment_name)
    assert node.data.metrics["validation_failures"] == 2
    assert node.data.params["node_model"] == "gemini-2.5-pro"
    assert node.data.params["prompt_template_sha"] == "abc123"
    assert artifact_text(mlflow_client, node, "prompt_template.txt") == "Write about {state.topic}"
    assert parent.data.params["prompts_sha"] == "fff"
    assert parent.data.tags["demo_model"] == "true"
    assert node.data.tags["demo_model"] == "true"


def test_log_system_metrics_attaches_mlflow_monitor(mlflow_store, experiment_name, mlflow_client):
    import time

    def slow(state: State) -> State:
        time.sleep(2.5)
        return {"text": "done"}

    handler = make_handler(mlflow_store, experiment_name, log_system_metrics=True)
    one_node_graph(slow).invoke({}, config={"callbacks": [handler]})
    assert handler.flush(60)
    (parent,), _ = runs_of(mlflow_client, experiment_name)
    system = [k for k in parent.data.metrics if k.startswith("system/")]
    assert "system/cpu_utilization_percentage" in system
    assert parent.info.status == "FINISHED"


def test_env_flag_attaches_handler_with_zero_code(tmp_path):
    """CONFIGURABLE_AGENTS_MLFLOW=true: a plain script, no handler in sight, lands in MLflow."""
    import os
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        from typing import TypedDict
        from langgraph.graph import END, START, StateGraph
        from tests.fakes import repeating

        class S(TypedDict, total=False):
            text: str

        model = repeating("hello", 21, 7)
        g = StateGraph(S)
        g.add_node("greet", lambda s: {"text": model.invoke("hi").content})
        g.add_edge(START, "greet")
        g.add_edge("greet", END)
        print(g.compile().invoke({}))
    """))
    db = tmp_path / "zero.db"
    env = {
        **os.environ,
        "CONFIGURABLE_AGENTS_MLFLOW": "true",
        "CONFIGURABLE_AGENTS_MLFLOW_TRACKING_URI": f"sqlite:///{db}",
        "CONFIGURABLE_AGENTS_MLFLOW_EXPERIMENT_NAME": "zero-code",
        "CONFIGURABLE_AGENTS_MLFLOW_FLUSH_TIMEOUT_S": "120",
        "PYTHONPATH": os.getcwd(),
    }
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "hello" in proc.stdout, proc.stderr
    client = MlflowClient(f"sqlite:///{db}")
    (parent,), (node,) = runs_of(client, "zero-code")
    assert parent.data.metrics["total_input_tokens"] == 21
    assert node.data.params["node_id"] == "greet"
