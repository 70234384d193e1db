"""A real Prometheus scrapes a real app on loopback and evaluates the shipped rules.

Real LangGraph graphs run with a handler built from config (Prometheus sink on,
serving ``/metrics`` itself). PromQL over Prometheus's HTTP API must return exactly
the token and cost sums the handler computed, every query of the shipped Grafana
dashboard must run and return data, and the fast error-budget burn alert must fire
after a burst of failing invocations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from configurable_agents.names import Metric
from configurable_agents.observability.sinks.prometheus import PrometheusSink
from tests.prometheus_graphs import (
    QA_INPUT_TOKENS,
    QA_OUTPUT_TOKENS,
    FactsRecorder,
    fresh_process_metrics,
    invoke,
    prometheus_handler,
    qa_graph,
)
from tests.prometheus_server import PrometheusServer, require_binary

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
GOOD_RUNS = 12  # distinct teams: two more than max_label_values, so two fold into "other"
FAILING_BURST = 5


def _rules_without_for(tmp_path: Path) -> list[Path]:
    """The shipped rules, every alert's ``for`` cut to 0s so the test need not wait minutes."""
    alerts = yaml.safe_load((DEPLOY / "alert_rules.yml").read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    fast = tmp_path / "alert_rules.yml"
    fast.write_text(yaml.safe_dump(alerts))
    return [DEPLOY / "recording_rules.yml", fast]


def test_prometheus_sees_exact_sums_dashboard_data_and_a_firing_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_binary("prometheus")
    fresh_process_metrics(monkeypatch)
    recorder = FactsRecorder()
    handler = prometheus_handler(
        recorder, port=0, attribution_labels=["team"], max_label_values=10
    )
    sink = next(s for s in handler.sinks if isinstance(s, PrometheusSink))
    qa, custom = qa_graph(), qa_graph(model="our-private-finetune-v7")
    try:
        rules = _rules_without_for(tmp_path)
        with PrometheusServer(tmp_path, [f"127.0.0.1:{sink.port}"], rules) as prom:
            for i in range(GOOD_RUNS):
                invoke(qa, handler, "live-qa", team=f"t{i}", user_id=f"user-{i}")
            invoke(custom, handler, "live-custom", team="t0")
            invoke(qa, handler, "live-failing", team="t0")
            assert handler.flush(30)
            # The burst comes after a scrape has seen the workflow's series at their start.
            prom.wait_for(
                lambda: prom.query('{workflow="live-failing",status="FAILED"}'),
                what="the first scrape",
            )
            for _ in range(FAILING_BURST):
                with pytest.raises(ValueError, match="failed validation"):
                    invoke(qa, handler, "live-failing", fail=True, team="t0")
            assert handler.flush(30)

            total_runs = GOOD_RUNS + 2 + FAILING_BURST
            expected = recorder.totals("live-")
            assert len(recorder.facts) == total_runs
            assert expected[Metric.TOTAL_INPUT_TOKENS] == total_runs * QA_INPUT_TOKENS
            assert expected[Metric.TOTAL_OUTPUT_TOKENS] == total_runs * QA_OUTPUT_TOKENS
            assert expected[Metric.TOTAL_COST_USD] > 0

            live = 'workflow=~"live-.*"'
            prom.wait_for(
                lambda: prom.scalar(f"sum(configurable_agents_workflow_runs_total{{{live}}})")
                == total_runs,
                what="a scrape after every run",
            )
            tokens = f'sum(gen_ai_client_token_usage_sum{{{live},gen_ai_token_type="%s"}})'
            assert prom.scalar(tokens % "input") == expected[Metric.TOTAL_INPUT_TOKENS]
            assert prom.scalar(tokens % "output") == expected[Metric.TOTAL_OUTPUT_TOKENS]
            assert prom.scalar(tokens % "cache_read") == total_runs * 200
            assert prom.scalar(tokens % "reasoning") == total_runs * 30
            assert prom.scalar(
                f"sum(configurable_agents_cost_usd_total{{{live}}})"
            ) == pytest.approx(expected[Metric.TOTAL_COST_USD], rel=1e-9)
            assert prom.scalar(
                f"sum(configurable_agents_retries_total{{{live}}})"
            ) == expected[Metric.RETRY_COUNT] == total_runs
            assert prom.scalar(
                'sum(configurable_agents_workflow_runs_total{workflow="live-failing",status="FAILED"})'
            ) == FAILING_BURST
            assert prom.scalar(
                'sum(configurable_agents_unpriced_calls_total{workflow="live-custom"})'
            ) == 2
            assert prom.scalar(
                'sum(configurable_agents_label_values_folded_total{label="team"})'
            ) == 2
            assert prom.query('{user_id!=""}') == []  # user ids never become labels

            firing = prom.wait_for(
                lambda: [
                    a for a in prom.api("alerts")["alerts"]
                    if a["labels"]["alertname"] == "WorkflowErrorBudgetBurnFast"
                    and a["state"] == "firing"
                ],
                what="WorkflowErrorBudgetBurnFast firing",
            )
            assert [a["labels"]["workflow"] for a in firing] == ["live-failing"]
            assert firing[0]["annotations"]["runbook"]

            dashboard = json.loads((DEPLOY / "grafana_dashboard.json").read_text())
            exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
            for expr in exprs:
                query = expr.replace("$workflow", ".*")
                prom.wait_for(lambda q=query: prom.query(q), what=f"data for {query}")
    finally:
        handler.close(10)
