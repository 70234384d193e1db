"""A real Prometheus scrapes the sink's endpoint on loopback and evaluates the shipped rules.

PromQL over Prometheus's HTTP API must return the exact token and cost sums of the
workflows, every query of the shipped Grafana dashboard must run and return data, and
the fast error-budget burn alert must fire after a burst of failing invocations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from configurable_agents.config.prometheus_config import PrometheusConfig
from configurable_agents.names import Metric
from configurable_agents.observability.sinks.prometheus import PrometheusMetrics, PrometheusSink
from tests.prometheus_server import PrometheusServer, require_binary
from tests.test_prometheus_sink import make_facts

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


def _rules_without_for(tmp_path: Path) -> list[Path]:
    """The shipped rules, with every alert's ``for`` cut to 0s so a test need not wait minutes."""
    alerts = yaml.safe_load((DEPLOY / "alert_rules.yml").read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    fast = tmp_path / "alert_rules.yml"
    fast.write_text(yaml.safe_dump(alerts))
    return [DEPLOY / "recording_rules.yml", fast]


def test_prometheus_sees_exact_sums_dashboard_data_and_a_firing_alert(tmp_path: Path) -> None:
    require_binary("prometheus")
    metrics = PrometheusMetrics(CollectorRegistry(), attribution_labels=("team",))
    sink = PrometheusSink(
        PrometheusConfig(enabled=True, port=0, attribution_labels=["team"], max_label_values=10),
        metrics,
    )
    try:
        rules = _rules_without_for(tmp_path)
        with PrometheusServer(tmp_path, [f"127.0.0.1:{sink.port}"], rules) as prom:
            facts = [make_facts("live-qa", metadata={"team": f"t{i}"}, retries=i % 2)
                     for i in range(12)]
            facts.append(make_facts("live-custom", model="our-private-finetune-v7"))
            facts.append(make_facts("live-failing"))
            for item in facts:
                sink.export(item)
            # The burst comes after a scrape has seen the workflow's series at their start.
            prom.wait_for(
                lambda: prom.query('{workflow="live-failing",status="FAILED"}'),
                what="the first scrape",
            )
            burst = [make_facts("live-failing", status="FAILED") for _ in range(5)]
            for item in burst:
                sink.export(item)
            facts += burst

            expected_in = sum(f.plan.metrics[Metric.TOTAL_INPUT_TOKENS] for f in facts)
            expected_out = sum(f.plan.metrics[Metric.TOTAL_OUTPUT_TOKENS] for f in facts)
            expected_cost = sum(f.plan.metrics[Metric.TOTAL_COST_USD] for f in facts)
            runs = prom.wait_for(
                lambda: prom.scalar("sum(configurable_agents_workflow_runs_total)") == len(facts),
                what="the scrape of every run",
            )
            assert runs
            tokens = 'sum(gen_ai_client_token_usage_sum{gen_ai_token_type="%s"})'
            assert prom.scalar(tokens % "input") == expected_in
            assert prom.scalar(tokens % "output") == expected_out
            assert prom.scalar("sum(configurable_agents_cost_usd_total)") == pytest.approx(
                expected_cost, rel=1e-9
            )
            assert prom.scalar(
                'sum(configurable_agents_workflow_runs_total{status="FAILED"})'
            ) == 5

            alert = prom.wait_for(
                lambda: [
                    a for a in prom.api("alerts")["alerts"]
                    if a["labels"]["alertname"] == "WorkflowErrorBudgetBurnFast"
                    and a["state"] == "firing"
                ],
                what="WorkflowErrorBudgetBurnFast firing",
            )
            assert alert[0]["labels"]["workflow"] == "live-failing"
            assert alert[0]["annotations"]["runbook"]

            dashboard = json.loads((DEPLOY / "grafana_dashboard.json").read_text())
            exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
            for expr in exprs:
                query = expr.replace("$workflow", ".*")
                prom.wait_for(lambda q=query: prom.query(q), what=f"data for {query}")
    finally:
        sink.close(1.0)
