"""The shipped rules under deploy/prometheus: promtool checks them and runs their unit tests.

Every alert carries a severity, a summary and a one-line runbook; every dashboard
query only reads metrics the sink writes or the shipped rules record.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from configurable_agents.observability.sinks.prometheus import health, metrics
from tests.prometheus_server import require_binary

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
RULE_FILES = [DEPLOY / "recording_rules.yml", DEPLOY / "alert_rules.yml"]


def _rules(path: Path) -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def test_promtool_checks_every_rule_file() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, RULE_FILES)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout
    assert "SUCCESS: 11 rules found" in result.stdout


def test_promtool_unit_tests_cover_every_shipped_rule() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", str(DEPLOY / "rules_test.yml")],
        capture_output=True, text=True, timeout=120, check=False, cwd=DEPLOY,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout

    tests_text = (DEPLOY / "rules_test.yml").read_text()
    tested_alerts = set(re.findall(r"alertname: (\w+)", tests_text))
    alerts = {str(r["alert"]) for r in _rules(DEPLOY / "alert_rules.yml")}
    assert alerts == tested_alerts
    recorded = {str(r["record"]) for r in _rules(DEPLOY / "recording_rules.yml")}
    # A recording rule is tested directly or through the alert built on it.
    for name in recorded:
        assert name in tests_text or any(
            name in str(r["expr"]) for r in _rules(DEPLOY / "alert_rules.yml")
        ), name


def test_every_alert_has_severity_summary_and_runbook() -> None:
    for rule in _rules(DEPLOY / "alert_rules.yml"):
        labels = rule.get("labels") or {}
        annotations = rule.get("annotations") or {}
        assert labels.get("severity") in {"page", "ticket", "info"}, rule["alert"]
        assert annotations.get("summary"), rule["alert"]
        runbook = str(annotations.get("runbook", ""))
        assert runbook and "\n" not in runbook.strip(), rule["alert"]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana_dashboard.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_dashboard_reads_only_metrics_that_exist() -> None:
    known = {
        metrics.TOKEN_USAGE, metrics.OPERATION_DURATION, metrics.WORKFLOW_DURATION,
        metrics.WORKFLOW_RUNS, metrics.COST_USD, metrics.RETRIES, metrics.FALLBACKS,
        metrics.UNPRICED_CALLS, metrics.LABELS_FOLDED, health.QUEUE_DEPTH, health.UP,
        *(name + "_total" for name in health.COUNTERS.values()),
        *(str(r["record"]) for r in _rules(DEPLOY / "recording_rules.yml")),
    }
    exprs = _dashboard_exprs()
    assert len(exprs) >= 15
    for expr in exprs:
        for name in re.findall(r"([a-z_:][a-z0-9_:]*)(?:\{|\[)", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in known or base in known, f"{name} in {expr}"
