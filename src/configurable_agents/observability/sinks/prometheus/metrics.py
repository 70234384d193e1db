"""The metric families: OpenTelemetry GenAI names as Prometheus writes them, ours beside them.

``gen_ai.client.token.usage`` (unit ``{token}``) becomes ``gen_ai_client_token_usage`` and
``gen_ai.client.operation.duration`` (unit ``s``) becomes
``gen_ai_client_operation_duration_seconds``, with the conventions' bucket boundaries and
attribute names (dots as underscores). Where no convention exists (cost, runs by status,
retries, fallbacks, unpriced calls) the name starts with ``configurable_agents_``.
docs/OBSERVABILITY.md ("Prometheus and alerting") lists every name, type, unit and label.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from configurable_agents.observability.facts.model import WorkflowFacts
from configurable_agents.observability.sinks.prometheus.health import ExporterHealthCollector
from configurable_agents.observability.sinks.prometheus.labels import LabelBudget

TOKEN_USAGE = "gen_ai_client_token_usage"
OPERATION_DURATION = "gen_ai_client_operation_duration_seconds"
WORKFLOW_DURATION = "configurable_agents_workflow_duration_seconds"
WORKFLOW_RUNS = "configurable_agents_workflow_runs_total"
COST_USD = "configurable_agents_cost_usd_total"
RETRIES = "configurable_agents_retries_total"
FALLBACKS = "configurable_agents_fallbacks_total"
UNPRICED_CALLS = "configurable_agents_unpriced_calls_total"
LABELS_FOLDED = "configurable_agents_label_values_folded_total"

# OpenTelemetry GenAI attribute names, as Prometheus labels.
OPERATION = "gen_ai_operation_name"
PROVIDER = "gen_ai_provider_name"
MODEL = "gen_ai_request_model"
TOKEN_TYPE = "gen_ai_token_type"
ERROR_TYPE = "error_type"
WORKFLOW, VERSION, NODE, STATUS = "workflow", "workflow_version", "node", "status"
STATUSES = ("FINISHED", "FAILED", "KILLED", "INTERRUPTED")

# The conventions' advisory bucket boundaries.
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, ... 67108864
OPERATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                     40.96, 81.92)
# A whole workflow: a cached answer in 100 ms up to a long agent run of an hour.
WORKFLOW_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                    1200.0, 1800.0, 3600.0)


class PrometheusMetrics:
    """Every family the sink writes, in one registry, with one label budget.

    Attribution label names (``team``, ``tenant_id``) are fixed when the families are made:
    a family's label names cannot change later, so a process keeps the first set it sees.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        attribution_labels: Sequence[str] = (),
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.attribution_labels = tuple(attribution_labels)
        attribution = list(self.attribution_labels)
        reg = self.registry
        self.token_usage = Histogram(
            TOKEN_USAGE,
            "Tokens per model call, by token type (OpenTelemetry gen_ai.client.token.usage).",
            [OPERATION, PROVIDER, MODEL, TOKEN_TYPE, WORKFLOW, NODE],
            buckets=TOKEN_BUCKETS,
            registry=reg,
        )
        self.operation_duration = Histogram(
            OPERATION_DURATION,
            "Duration of one model call (OpenTelemetry gen_ai.client.operation.duration).",
            [OPERATION, PROVIDER, MODEL, ERROR_TYPE, WORKFLOW, NODE],
            buckets=OPERATION_BUCKETS,
            registry=reg,
        )
        self.workflow_duration = Histogram(
            WORKFLOW_DURATION,
            "Duration of one workflow invocation, start to end.",
            [WORKFLOW, VERSION],
            buckets=WORKFLOW_BUCKETS,
            registry=reg,
        )
        self.runs = Counter(
            WORKFLOW_RUNS,
            "Workflow invocations by final status (FINISHED, FAILED, KILLED, INTERRUPTED).",
            [WORKFLOW, VERSION, STATUS, *attribution],
            registry=reg,
        )
        self.cost = Counter(
            COST_USD,
            "Estimated model cost in USD, by workflow, node and model.",
            [WORKFLOW, VERSION, NODE, MODEL, *attribution],
            registry=reg,
        )
        self.retries = Counter(
            RETRIES, "Retries (node reruns, with_retry attempts, on_retry events).",
            [WORKFLOW, VERSION], registry=reg,
        )
        self.fallbacks = Counter(
            FALLBACKS, "Fallbacks to another model or runnable.", [WORKFLOW, VERSION],
            registry=reg,
        )
        self.unpriced = Counter(
            UNPRICED_CALLS, "Model calls with no known price (their cost counts as 0).",
            [WORKFLOW, MODEL, PROVIDER], registry=reg,
        )
        self.folded = Counter(
            LABELS_FOLDED,
            "Label values replaced by 'other' because the label reached max_label_values.",
            ["label"], registry=reg,
        )
        self.budget = LabelBudget(on_fold=lambda label: self.folded.labels(label).inc())
        # Not in ``registry``: the endpoint adds it (in multi-process mode, beside the files).
        self.health = ExporterHealthCollector()
        self._run_keys: set[tuple[str, ...]] = set()

    def observe(self, facts: WorkflowFacts, cap: int) -> None:
        """Count one finished workflow; every free-form label value goes through the budget."""

        def fold(label: str, value: object) -> str:
            return self.budget.fold(label, "" if value is None else str(value), cap)

        workflow = fold(WORKFLOW, facts.name)
        version = fold(VERSION, facts.version)
        who = [
            fold(name, facts.attribution.get(name) or facts.metadata_text.get(name, ""))
            for name in self.attribution_labels
        ]

        key = (workflow, version, *who)
        if key not in self._run_keys:
            # Every status starts at 0, so the first failure is an increase that rate() sees.
            self._run_keys.add(key)
            for status in STATUSES:
                self.runs.labels(workflow, version, status, *who)
        self.runs.labels(workflow, version, facts.status, *who).inc()
        totals = facts.totals
        self.workflow_duration.labels(workflow, version).observe(totals.duration_s)
        if totals.retries > 0:
            self.retries.labels(workflow, version).inc(totals.retries)
        if totals.fallbacks > 0:
            self.fallbacks.labels(workflow, version).inc(totals.fallbacks)

        cost: dict[tuple[str, str], float] = defaultdict(float)
        for owner, call in facts.model_calls():
            node = fold(NODE, owner.node_id if owner is not None else "")
            model = fold(MODEL, call.model)
            provider = fold(PROVIDER, call.provider)
            operation = call.operation
            usage = call.usage
            for token_type, count in (
                ("input", usage.input),
                ("output", usage.output),
                ("cache_read", usage.cache_read),
                ("cache_creation", usage.cache_write),
                ("reasoning", usage.reasoning),
            ):
                if count or token_type in ("input", "output"):
                    self.token_usage.labels(
                        operation, provider, model, token_type, workflow, node
                    ).observe(count)
            if call.end_ns is not None:
                error = fold(ERROR_TYPE, call.error.type if call.error else "")
                self.operation_duration.labels(
                    operation, provider, model, error, workflow, node
                ).observe(max(0, call.end_ns - call.start_ns) / 1e9)
            if not call.priced:
                self.unpriced.labels(workflow, model, provider).inc()
            cost[(node, model)] += call.cost_usd
        for (node, model), amount in cost.items():
            self.cost.labels(workflow, version, node, model, *who).inc(amount)
