"""Screenshots of the quality loop in the MLflow UI: feedback, a session, online scores.

    .venv/bin/python scripts/quality_screenshots.py [--out docs/img] [--keep]

Like ``scripts/screenshots.py`` (whose server and browser it reuses): a real ``mlflow
server`` on 127.0.0.1 with a throwaway sqlite store, seeded through the server with a
three-turn LangGraph conversation (one ``thread_id``, a checkpointer, user ``alice``)
whose turns are scored online (``regex`` scorer, sample rate 1.0), and one human feedback
logged with ``configurable_agents.feedback.log_feedback`` on the last turn's trace.
Then headless Chromium saves the session view of the conversation (its three turns, each
with its assessments: the online ``regex`` score, and the feedback on the last turn), that
turn's trace with its Assessments panel open, and the runs list with the
``quality/regex`` and ``feedback/thumbs_up`` columns next to the runs' tokens. The second
reply starts in lower case, so ``regex:^[A-Z]`` scores it 0 and the others 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "support_chat"
THREAD = "conv-42"
TURNS = ("Hi, my order #1234 has not arrived.", "It was due on Monday.",
         "Yes please, resend it.")
# The runs list, searched to the scored runs (typed into its search box).
SEARCHES = {"mlflow_online_scores.png": "metrics.`quality/regex` >= 0"}
# What a user clicks before looking: the trace's assessments panel; in the runs list, the
# sort menu's metric entries (sorting by a metric shows its column), tokens first.
SIZES = {"mlflow_online_scores.png": (1700, 700)}
SORT_BUTTON = "[data-testid='sort-select-dropdown']"
CLICKS = {
    "mlflow_feedback_trace.png": ("text:Assess",),
    "mlflow_online_scores.png": tuple(
        step for metric in ("total_tokens", "feedback/thumbs_up", "quality/regex")
        for step in (SORT_BUTTON, f"[data-testid='sort-select-{metric}']")),
}
REPLIES = ["Sorry to hear that. When was it due?",
           "ok, I can resend it today or refund you.",  # no capital: regex scores 0
           "Done: a new parcel leaves today, tracking number sent by email."]


def _screenshots() -> Any:
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "scripts" /
                                                  "screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed(url: str) -> tuple[str, str, str]:
    """The conversation and its scores, through the server: (experiment, run, trace)."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, MessagesState, StateGraph
    from mlflow import MlflowClient

    from configurable_agents.config import ObservabilityConfig
    from configurable_agents.feedback import log_feedback
    from configurable_agents.observability import MLflowCallbackHandler

    model = FakeListChatModel(responses=REPLIES)

    def chat(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("chat", chat)
    graph.add_edge(START, "chat")
    graph.add_edge("chat", END)
    app = graph.compile(checkpointer=InMemorySaver())
    config = ObservabilityConfig.model_validate({
        "mlflow": {"enabled": True, "tracking_uri": url, "experiment_name": EXPERIMENT},
        "online_eval": {"enabled": True, "sample_rate": 1.0, "scorers": ["regex:^[A-Z]"]},
    })
    handler = MLflowCallbackHandler(config, workflow_name="support_chat",
                                    workflow_version="1.0.0")
    turn_ids = [uuid.uuid4() for _ in TURNS]
    for turn, turn_id in zip(TURNS, turn_ids, strict=True):
        app.invoke({"messages": [("user", turn)]},
                   config={"callbacks": [handler], "metadata": {"user_id": "alice"},
                           "run_id": turn_id, "configurable": {"thread_id": THREAD}})
    assert handler.flush(60), "export did not finish"
    handler.close()
    # On the last turn, by the LangChain run id the app holds.
    recorded = log_feedback(str(turn_ids[-1]), "thumbs_up", True, source="human", user="alice",
                            rationale="resent without asking twice", tracking_uri=url)
    experiment = MlflowClient(url).get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    print(f"seeded {len(TURNS)} turns of {THREAD}; feedback on {recorded.trace_id}")
    return experiment.experiment_id, recorded.run_id, recorded.trace_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    args = parser.parse_args(argv)
    shots = _screenshots()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs Debian's chromium: apt-get install -y chromium", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="ca-quality-screenshots-"))
    port = shots.free_port()
    try:
        with shots.mlflow_server(workdir, port) as url:
            experiment_id, _, trace_id = seed(url)
            base = f"http://{shots.BROWSER_HOST}:{port}/#/experiments/{experiment_id}"
            pages = {
                # Each turn with its assessments: the online score (regex) and the human
                # feedback (thumbs_up).
                "mlflow_session.png": f"{base}/chat-sessions/{THREAD}",
                # The scored turn's trace, its assessments panel: thumbs_up by alice with
                # the rationale, and the online regex score.
                "mlflow_feedback_trace.png": (
                    f"{base}/traces?selectedEvaluationId={trace_id}&traceId={trace_id}"),
                # The runs list: quality/regex (online) and feedback/thumbs_up next to
                # the runs' cost and tokens.
                "mlflow_online_scores.png": f"{base}/runs",
            }
            with shots.Browser(chromium, workdir / "chromium-profile") as browser:
                # A first load of the UI (cold server, cold cache) can outlast the settle
                # time of one page: load it once before the pages we keep.
                browser.call("Page.navigate", url=f"{base}/traces")
                time.sleep(2 * shots.SETTLE_S)
                for name, page in pages.items():
                    width, height = SIZES.get(name, (1600, 1000))
                    browser.screenshot(page, args.out / name, width, height,
                                       search=SEARCHES.get(name), clicks=CLICKS.get(name, ()))
    finally:
        if args.keep:
            print(f"store kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
