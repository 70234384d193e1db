"""Screenshots of the MLflow UI on our data: Overview, Traces, a run, a trace, evaluations.

    .venv/bin/python scripts/screenshots.py [--out docs/img] [--keep]

Starts ``mlflow server`` on 127.0.0.1 (a free port, a throwaway sqlite store), seeds it
*through the server* (the REST path users with a tracking server take) with the offline
demo (article writer v1.0.0 and v2.0.0) plus ReAct-agent turns grouped into two
sessions, and the QA assistant v1.0.0 and v2.0.0 evaluated on the shipped QA dataset
(Evaluation runs, Prompts and Agent versions pages), then drives headless Chromium
(Debian ``chromium``) over the DevTools protocol: load each page, let the UI fetch and
draw, close one-time tips, save a PNG (re-encoded with a palette when above 300 KB).
Everything is local (the browser reaches the server as ``mlflow-screenshots``, mapped to
127.0.0.1); server and browser are stopped at the end.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "article_writer"
QA_EXPERIMENT = "qa_assistant"
# The browser reaches the server under this name (mapped to 127.0.0.1): MLflow's UI opens
# its assistant panel on first load when the page's host is localhost / 127.0.0.1.
BROWSER_HOST = "mlflow-screenshots"
# The Overview's token and cost charts sit below the first screen.
SIZES = {"mlflow_overview.png": (1600, 1750)}
MAX_PNG_BYTES = 300_000
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    f"--host-resolver-rules=MAP {BROWSER_HOST} 127.0.0.1",
)
SETTLE_S = 8.0  # the UI fetches and renders its charts after load
# One-time tips that would cover the page: dismissed like a user would, by clicking.
DISMISS_TIPS_JS = """
[...document.querySelectorAll('button')]
  .filter(b => ['Got it'].includes(b.textContent.trim()))
  .forEach(b => b.click());
"""


FOCUS_SEARCH_JS = "document.querySelector('input[placeholder*=\"metrics\"]')?.focus()"
# The Evaluation runs view shows every run of the experiment as a tree, expanded (example
# runs nested under their evaluation run): show only the evaluation runs.
EVALUATION_RUNS_FILTER = "tags.`configurable_agents.kind` = 'evaluation'"
SEARCHES = {"mlflow_evaluation_runs.png": EVALUATION_RUNS_FILTER}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def mlflow_server(workdir: Path, port: int) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1:``port``; yields its URL, stops it after."""
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(mlflow_bin), "server",
            "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
            "--artifacts-destination", str(workdir / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--allowed-hosts", f"127.0.0.1:{port},localhost:{port},{BROWSER_HOST}:{port}",
            "--cors-allowed-origins", f"http://{BROWSER_HOST}:{port}",
        ],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url + "/health", timeout=2) as response,
            ):
                if response.status == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start; see {workdir / 'server.log'}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _load_example(name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed(url: str) -> tuple[str, str, str]:
    """Write demo runs and traces through the server; (experiment id, run id, trace id)."""
    from langchain_core.messages import HumanMessage
    from mlflow import MlflowClient

    from configurable_agents.config import MLFlowConfig
    from configurable_agents.demo import run_demo
    from configurable_agents.observability import MLflowCallbackHandler

    run_demo(tracking_uri=url, experiment=EXPERIMENT, runs=3)

    react = _load_example("react_agent")
    handler = MLflowCallbackHandler(
        MLFlowConfig(enabled=True, tracking_uri=url, experiment_name=EXPERIMENT),
        workflow_name="react_agent", workflow_version="1.0.0",
    )
    agent = react.build_agent()  # type: ignore[attr-defined]
    for thread, user in (("support-17", "bob"), ("support-17", "bob"), ("support-18", "carol")):
        agent.invoke(
            {"messages": [HumanMessage(react.QUESTION)]},  # type: ignore[attr-defined]
            config={"callbacks": [handler],
                    "metadata": {"user_id": user, "thread_id": thread}},
        )
    assert handler.flush(60), "export did not finish"
    run_id = handler.last_run_id
    handler.close()
    assert run_id is not None

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    run = client.get_run(run_id)
    trace_id = run.data.tags["configurable_agents.trace_id"]
    traces = client.search_traces(locations=[experiment.experiment_id], max_results=100)
    runs = client.search_runs([experiment.experiment_id],
                              "tags.`configurable_agents.kind` = 'workflow'")
    run_cost = sum(r.data.metrics.get("total_cost_usd", 0.0) for r in runs)
    trace_cost = sum(
        json.loads(t.info.trace_metadata.get("mlflow.trace.cost", "{}")).get("total_cost", 0.0)
        for t in traces
    )
    tokens = sum((t.info.token_usage or {}).get("total_tokens", 0) for t in traces)
    print(f"seeded {len(runs)} workflow runs and {len(traces)} traces in experiment "
          f"{experiment.experiment_id} ({experiment.tags}); runs' total_cost_usd "
          f"${run_cost:.6f}, traces' cost ${trace_cost:.6f}, traces' tokens {tokens}")
    return experiment.experiment_id, run_id, trace_id


def seed_evaluations(url: str) -> tuple[str, str]:
    """QA v1.0.0 and v2.0.0 evaluated through the server, prompts registered.

    Returns the experiment id and v2.0.0's evaluation run id.
    """
    from mlflow import MlflowClient

    from configurable_agents.evaluation.workflow_eval import evaluate_workflow
    from configurable_agents.scoring import Contains

    examples = ROOT / "examples"
    for name in ("qa_assistant.yaml", "qa_assistant_v2.yaml"):
        result = evaluate_workflow(examples / name, examples / "qa_dataset.jsonl", [Contains()],
                                   demo=True, tracking_uri=url, experiment=QA_EXPERIMENT,
                                   register_prompts=True)
        print(f"evaluated {name}: accuracy {result.accuracy:.0%}, cost per correct answer "
              f"${result.cost_per_correct_usd:.6f}, run {result.run_id}")
    experiment = MlflowClient(url).get_experiment_by_name(QA_EXPERIMENT)
    assert experiment is not None
    return experiment.experiment_id, result.run_id


class Browser:
    """Headless Chromium driven over the DevTools protocol (one page, one profile).

    ``--screenshot`` alone cannot wait for the UI's data or close its one-time tips,
    which dim the whole page; a DevTools session can do both.
    """

    def __init__(self, chromium: str, profile: Path) -> None:
        self.profile = profile
        self.process = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._id = 0
        self._stack = contextlib.ExitStack()
        self.ws: Any = None

    def __enter__(self) -> Browser:
        from websockets.sync.client import connect

        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = self._stack.enter_context(
            connect(page["webSocketDebuggerUrl"], max_size=64 * 2**20)
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def click(self, selector: str) -> bool:
        """Click the first element matching a CSS ``selector`` (``text:WORDS``: the first
        button whose text starts with WORDS) with real mouse events: menus open on
        pointer-down, which a scripted ``element.click()`` does not send."""
        if selector.startswith("text:"):
            find = ("[...document.querySelectorAll('button')].find(b => "
                    f"b.textContent.trim().startsWith({json.dumps(selector[5:])}))")
        else:
            find = f"document.querySelector({json.dumps(selector)})"
        found = self.call("Runtime.evaluate", returnByValue=True, expression=(
            f"(() => {{ const e = {find};"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"))
        point = found.get("result", {}).get("value")
        if not point:
            print(f"  nothing matches {selector!r}", file=sys.stderr)
            return False
        x, y = point
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1)
        time.sleep(1.5)
        return True

    def screenshot(self, url: str, target: Path, width: int, height: int,
                   search: str | None = None, clicks: tuple[str, ...] = ()) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)
        time.sleep(SETTLE_S)
        self.call("Runtime.evaluate", expression=DISMISS_TIPS_JS)
        time.sleep(1.0)
        for selector in clicks:  # as a user would: open a panel, pick a column
            self.click(selector)
        if search:  # typed into the page's search box, as a user would
            self.call("Runtime.evaluate", expression=FOCUS_SEARCH_JS)
            self.call("Input.insertText", text=search)
            for kind in ("keyDown", "keyUp"):
                self.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                          windowsVirtualKeyCode=13)
            time.sleep(SETTLE_S / 2)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        target.write_bytes(base64.b64decode(data))
        _shrink(target)
        print(f"{target} ({target.stat().st_size // 1024} KB) <- {url}")


def _shrink(path: Path) -> None:
    """Keep PNGs commit-sized: re-encode with a 256-colour palette when above the cap."""
    if path.stat().st_size <= MAX_PNG_BYTES:
        return
    from PIL import Image

    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        buffer = io.BytesIO()
        palette.save(buffer, format="PNG", optimize=True)
    path.write_bytes(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs Debian's chromium: apt-get install -y chromium", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="ca-screenshots-"))
    port = free_port()
    try:
        with mlflow_server(workdir, port) as url:
            experiment_id, run_id, trace_id = seed(url)
            qa_experiment_id, eval_run_id = seed_evaluations(url)
            qa = f"http://{BROWSER_HOST}:{port}/#/experiments/{qa_experiment_id}"
            base = f"http://{BROWSER_HOST}:{port}/#/experiments/{experiment_id}"
            pages = {
                "mlflow_overview.png": f"{base}/overview/usage",
                "mlflow_traces.png": f"{base}/traces",
                "mlflow_trace_detail.png": (
                    f"{base}/traces?selectedEvaluationId={trace_id}&traceId={trace_id}"
                ),
                "mlflow_run.png": f"{base}/runs/{run_id}",
                "mlflow_run_traces.png": f"{base}/runs/{run_id}/traces",
                # The runs list as it opens: the evaluation runs, examples collapsed.
                "mlflow_runs_evaluations_first.png": f"{qa}/runs",
                "mlflow_evaluation_runs.png": f"{qa}/evaluation-runs",
                # v2.0.0's evaluation run: its example traces with their assessments.
                "mlflow_evaluation_traces.png": f"{qa}/runs/{eval_run_id}/traces",
                "mlflow_prompts.png": f"{qa}/prompts",
                "mlflow_agent_versions.png": f"{qa}/models",
            }
            with Browser(chromium, workdir / "chromium-profile") as browser:
                for name, page in pages.items():
                    width, height = SIZES.get(name, (1600, 1000))
                    browser.screenshot(page, args.out / name, width, height,
                                       search=SEARCHES.get(name))
    finally:
        if args.keep:
            print(f"store kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
