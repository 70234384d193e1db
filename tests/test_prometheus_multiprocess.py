"""Multi-process mode: two gunicorn workers, one scrape of the mounted app shows both.

prometheus-client's multi-process mode (``PROMETHEUS_MULTIPROC_DIR``) as a user runs it:
gunicorn with two sync workers, each running a real graph with a handler built from
config, and the metrics app mounted at ``/metrics`` in the same WSGI app.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.prometheus_graphs import QA_INPUT_TOKENS
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
INVOCATIONS = 8


def test_one_scrape_shows_the_sum_of_two_worker_processes(tmp_path: Path) -> None:
    mp_dir = tmp_path / "multiproc"
    mp_dir.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(mp_dir),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "CA_TEST_WORKFLOW": "mp-qa",
    }
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
             "--timeout", "60", "tests.prometheus_wsgi_app:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/metrics", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.3)

        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(
                lambda _: requests.get(url + "/invoke", timeout=30), range(INVOCATIONS)
            ))
        assert all(a.status_code == 200 for a in answers)
        pids = {a.text for a in answers}
        assert len(pids) == 2, f"both workers should have served: {pids}"

        text = requests.get(url + "/metrics", timeout=10).text
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        runs = sum(
            s.value for s in samples
            if s.name == "configurable_agents_workflow_runs_total"
            and s.labels.get("workflow") == "mp-qa"
        )
        assert runs == INVOCATIONS
        input_tokens = sum(
            s.value for s in samples
            if s.name == "gen_ai_client_token_usage_sum"
            and s.labels.get("workflow") == "mp-qa"
            and s.labels.get("gen_ai_token_type") == "input"
        )
        assert input_tokens == INVOCATIONS * QA_INPUT_TOKENS
        # Each worker wrote its own file: the sum really came from two processes.
        assert len(list(mp_dir.glob("counter_*.db"))) == 2
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
