"""A real Prometheus server for tests (Debian's ``prometheus`` package; ``.ci/run`` installs it).

Fast settings (1 s scrape and rule evaluation), a temp storage dir and a free loopback
port. Outside CI a missing binary skips the test with the reason; in CI it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.servers import free_port

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_binary(name: str) -> str:
    """Path of ``prometheus`` / ``promtool``; skip (fail in CI) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not installed (apt-get install prometheus; .ci/run does)"
        if IN_CI:
            pytest.fail(f"CI must run the Prometheus tests: {reason}")
        pytest.skip(reason)
    return path


class PrometheusServer:
    """``prometheus`` scraping ``targets`` every second, with ``rule_files`` loaded."""

    def __init__(self, root: Path, targets: list[str], rule_files: list[Path]) -> None:
        self.binary = require_binary("prometheus")
        self.root = root
        self.port = free_port()
        self.log_path = root / "prometheus.log"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": targets}]}],
        }
        self.config_path = root / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PrometheusServer:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self._proc = self._spawn(log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/-/ready", timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"prometheus did not start: {self.log_path.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def api(self, path: str, **params: Any) -> Any:
        """The ``data`` of an HTTP API answer; raises with Prometheus's error text."""
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def scalar(self, expr: str) -> float:
        """The single value of ``expr`` (a ``sum(...)``); AssertionError when empty."""
        result = self.query(expr)
        assert len(result) == 1, f"{expr} returned {result}"
        return float(result[0]["value"][1])

    def wait_for(self, check: Any, timeout: float = 60.0, what: str = "condition") -> Any:
        """Poll ``check()`` until it returns a truthy value (Prometheus scrapes every 1 s)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(AssertionError, requests.RequestException):
                last = check()
                if last:
                    return last
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last={last!r}\n"
                             f"{self.log_path.read_text()[-2000:]}")
