"""The metric families: OpenTelemetry GenAI names as Prometheus writes them, ours beside them.

``gen_ai.client.token.usage`` (unit ``{token}``) becomes ``gen_ai_client_token_usage`` and
``gen_ai.client.operation.duration`` (unit ``s``) becomes
``gen_ai_client_operation_duration_seconds``, with the conventions' bucket boundaries and
attribute names (dots as underscores). Where no convention exists (cost, runs by status,
retries, fallbacks, unpriced calls) the name starts with ``configurable_agents_``.
docs/sinks/prometheus.md lists every name, type, unit and label.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from configurable_agents.observability.facts.model import WorkflowFacts
from configurable_agents.observability.sinks.prometheus.health import ExporterHealthCollector
from configurable_agents.observability.sinks.prometheus.labels import LabelBudget
from configurable_agents.observability.sinks.prometheus.series import SeriesBudget

TOKEN_USAGE = "gen_ai_client_token_usage"
OPERATION_DURATION = "gen_ai_client_operation_duration_seconds"
WORKFLOW_DURATION = "configurable_agents_workflow_duration_seconds"
WORKFLOW_RUNS = "configurable_agents_workflow_runs_total"
COST_USD = "configurable_agents_cost_usd_total"
RETRIES = "configurable_agents_retries_total"
FALLBACKS = "configurable_agents_fallbacks_total"
UNPRICED_CALLS = "configurable_agents_unpriced_calls_total"
LABELS_FOLDED = "configurable_agents_label_values_folded_total"
QUALITY_SCORE = "configurable_agents_quality_score"

# OpenTelemetry GenAI attribute names, as Prometheus labels.
OPERATION = "gen_ai_operation_name"
PROVIDER = "gen_ai_provider_name"
MODEL = "gen_ai_request_model"
TOKEN_TYPE = "gen_ai_token_type"
ERROR_TYPE = "error_type"
WORKFLOW, VERSION, NODE, STATUS = "workflow", "workflow_version", "node", "status"
SCORER = "scorer"
STATUSES = ("FINISHED", "FAILED", "KILLED", "INTERRUPTED")

# The conventions' advisory bucket boundaries.
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, ... 67108864
OPERATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                     40.96, 81.92)
# A whole workflow: a cached answer in 100 ms up to a long agent run of an hour.
WORKFLOW_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                    1200.0, 1800.0, 3600.0)
# Scores are in [0, 1]; pass/fail scorers land in the first or the last bucket.
QUALITY_BUCKETS = (0.0, 0.25, 0.5, 0.75, 1.0)


class PrometheusMetrics:
    """Every family the sink writes, in one registry, with one label budget.

    Attribution label names (``team``, ``tenant_id``) are fixed when the families are made:
    a family's label names cannot change later, so a process keeps the first set it sees.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        attribution_labels: Sequence[str] = (),
        max_series: int = 5_000,
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
        self.quality = Histogram(
            QUALITY_SCORE,
            "Online-evaluation score (0..1) of a sampled finished workflow, by scorer.",
            [WORKFLOW, VERSION, SCORER],
            buckets=QUALITY_BUCKETS,
            registry=reg,
        )
        self.budget = LabelBudget(on_fold=lambda label: self.folded.labels(label).inc())
        self.series = SeriesBudget(max_series)
        # Series per label set: a histogram's buckets + +Inf + _sum, _count, _created;
        # a counter's _total + _created.
        self._shapes: dict[int, tuple[str, int]] = {
            id(self.token_usage): (TOKEN_USAGE, len(TOKEN_BUCKETS) + 4),
            id(self.operation_duration): (OPERATION_DURATION, len(OPERATION_BUCKETS) + 4),
            id(self.workflow_duration): (WORKFLOW_DURATION, len(WORKFLOW_BUCKETS) + 4),
            id(self.runs): (WORKFLOW_RUNS, 2), id(self.cost): (COST_USD, 2),
            id(self.retries): (RETRIES, 2), id(self.fallbacks): (FALLBACKS, 2),
            id(self.unpriced): (UNPRICED_CALLS, 2),
            id(self.quality): (QUALITY_SCORE, len(QUALITY_BUCKETS) + 4),
        }
        # Not in ``registry``: the endpoint adds it (in multi-process mode, beside the files).
        self.health = ExporterHealthCollector()
        self._run_keys: set[tuple[str, ...]] = set()

    def _child(self, family: Any, labels: Sequence[tuple[str, bool]]) -> Any:
        """``family.labels(...)`` for a label set the series budget admits.

        Each label is ``(value, keep)``: ``keep`` values survive an overflow (see series.py).
        """
        name, cost = self._shapes[id(family)]
        values = self.series.admit(name, [v for v, _ in labels], [k for _, k in labels], cost)
        return family.labels(*values)

    def observe(self, facts: WorkflowFacts, cap: int, *, known: Collection[str] = (),
                metadata_names: bool = False) -> None:
        """Count one finished workflow; every free-form label value goes through the budgets.

        The workflow and version labels come from the handler's configuration (or the
        graph's name) unless ``metadata_names``; ``known`` names are never folded.
        """

        def fold(label: str, value: object) -> tuple[str, bool]:
            return self.budget.fold(label, "" if value is None else str(value), cap), False

        name, version = facts.name, facts.version
        if not metadata_names and facts.configured_name:
            name, version = facts.configured_name, facts.configured_version
        trusted = name == facts.configured_name or name in known
        workflow = (self.budget.fold(WORKFLOW, name, cap, known=trusted), trusted)
        fixed = version == facts.configured_version
        ver = (self.budget.fold(VERSION, version or "", cap, known=fixed), fixed)
        who = [
            fold(label, facts.attribution.get(label) or facts.metadata_text.get(label, ""))
            for label in self.attribution_labels
        ]

        key = (workflow[0], ver[0], *(v for v, _ in who))
        if key not in self._run_keys:
            # Every status starts at 0, so the first failure is an increase that rate() sees.
            self._run_keys.add(key)
            for status in STATUSES:
                self._child(self.runs, [workflow, ver, (status, True), *who])
        self._child(self.runs, [workflow, ver, (facts.status, True), *who]).inc()
        totals = facts.totals
        self._child(self.workflow_duration, [workflow, ver]).observe(totals.duration_s)
        if totals.retries > 0:
            self._child(self.retries, [workflow, ver]).inc(totals.retries)
        if totals.fallbacks > 0:
            self._child(self.fallbacks, [workflow, ver]).inc(totals.fallbacks)

        cost: dict[tuple[tuple[str, bool], tuple[str, bool]], float] = defaultdict(float)
        for owner, call in facts.model_calls():
            node = fold(NODE, owner.node_id if owner is not None else "")
            model = fold(MODEL, call.model)
            provider = fold(PROVIDER, call.provider)
            operation = (call.operation, True)
            usage = call.usage
            for token_type, count in (
                ("input", usage.input),
                ("output", usage.output),
                ("cache_read", usage.cache_read),
                ("cache_creation", usage.cache_write),
                ("reasoning", usage.reasoning),
            ):
                if count or token_type in ("input", "output"):
                    self._child(self.token_usage, [operation, provider, model, (token_type, True),
                                                   workflow, node]).observe(count)
            if call.end_ns is not None:
                error = fold(ERROR_TYPE, call.error.type if call.error else "")
                self._child(self.operation_duration,
                            [operation, provider, model, error, workflow, node]).observe(
                    max(0, call.end_ns - call.start_ns) / 1e9)
            if not call.priced:
                self._child(self.unpriced, [workflow, model, provider]).inc()
            cost[(node, model)] += call.cost_usd
        for (node, model), amount in cost.items():
            self._child(self.cost, [workflow, ver, node, model, *who]).inc(amount)

    def observe_quality(self, workflow: str, version: str | None, scorer: str, score: float,
                        cap: int) -> None:
        """One online score; labels through the same budgets as every other family.

        The scorer names come from the config (a short, fixed list): never folded.
        """
        labels = [(self.budget.fold(WORKFLOW, workflow, cap), False),
                  (self.budget.fold(VERSION, version or "", cap), False), (scorer, True)]
        self._child(self.quality, labels).observe(min(1.0, max(0.0, float(score))))
