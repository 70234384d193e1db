"""A child forked after the pipeline's threads started still drains its own workflows.

``os.register_at_fork`` gives every worker fresh queues, locks and threads in the child
(as the OpenTelemetry SDK does); before, the child saw the parent's thread objects,
never started its own, and its workflows waited forever.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from configurable_agents.config.schema import JsonlConfig, ObservabilityConfig
from configurable_agents.observability import MLflowCallbackHandler
from tests.test_caller_namespace import graph


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_drains_its_workflows(tmp_path: Path) -> None:
    path = tmp_path / "facts.jsonl"
    handler = MLflowCallbackHandler(
        ObservabilityConfig(jsonl=JsonlConfig(enabled=True, path=str(path)))
    )
    app = graph()
    app.invoke({"text": "parent"}, config={"callbacks": [handler]})
    assert handler.flush(10)  # the pipeline and sink threads are running now

    pid = os.fork()
    if pid == 0:  # the child: its workflow must reach the file through fresh threads
        code = 1
        try:
            app.invoke({"text": "child"}, config={"callbacks": [handler],
                                                  "metadata": {"user_id": "child"}})
            code = 0 if handler.flush(10) else 2
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    app.invoke({"text": "parent again"}, config={"callbacks": [handler]})
    assert handler.flush(10)
    handler.close()
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 3
    assert [x["attribution"].get("user_id") for x in lines].count("child") == 1
