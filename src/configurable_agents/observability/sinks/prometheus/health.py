"""Exporter health read at scrape time: queue depth, spooled, failed, rejected workflows per sink.

A custom collector, so the numbers come from the pipeline's own counters when Prometheus
asks and nothing is updated on the caller's thread. Several pipelines in one process (one
per handler) are summed per sink name.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from configurable_agents.observability.sinks.base import Sink, SinkStats

logger = logging.getLogger(__name__)

PREFIX = "configurable_agents_exporter_"
QUEUE_DEPTH = PREFIX + "queue_depth"
UP = PREFIX + "up"
# SinkStats counter field -> metric name (prometheus-client appends ``_total``).
COUNTERS = {
    "exported": PREFIX + "exported_workflows",
    "failed": PREFIX + "failed_workflows",
    "dropped": PREFIX + "dropped_workflows",
    "spooled": PREFIX + "spooled_workflows",
    "replayed": PREFIX + "replayed_workflows",
    "rejected": PREFIX + "rejected_workflows",
}
_HELP = {
    "exported": "Workflows the sink wrote.",
    "failed": "Workflows the sink could not write and did not keep.",
    "dropped": "Workflows deliberately not written (queue full, counted loss).",
    "spooled": "Workflows kept on disk for a later replay (destination unreachable).",
    "replayed": "Spooled workflows written later.",
    "rejected": "Workflows the destination refused as invalid (set aside).",
}


class ExporterHealthCollector(Collector):
    """Yields the health of every sink of every watched pipeline, labelled ``sink``."""

    def __init__(self) -> None:
        self._sinks: weakref.WeakSet[Sink] = weakref.WeakSet()
        self._lock = threading.Lock()

    def watch(self, sink: Sink) -> None:
        with self._lock:
            self._sinks.add(sink)

    def forget(self, sink: Sink) -> None:
        with self._lock:
            self._sinks.discard(sink)

    def describe(self) -> list[Metric]:
        return []  # registering must not read any pipeline

    def collect(self) -> Iterator[Metric]:
        merged = self._merged()
        depth = GaugeMetricFamily(
            QUEUE_DEPTH, "Workflows waiting in the sink's queue.", labels=["sink"]
        )
        up = GaugeMetricFamily(
            UP, "1 when the sink's destination answered last time, else 0.", labels=["sink"]
        )
        counters = {
            field: CounterMetricFamily(name, _HELP[field], labels=["sink"])
            for field, name in COUNTERS.items()
        }
        for name, stats in sorted(merged.items()):
            depth.add_metric([name], stats.queue_depth)
            up.add_metric([name], 1.0 if stats.up else 0.0)
            for field, family in counters.items():
                family.add_metric([name], getattr(stats, field))
        yield depth
        yield up
        yield from counters.values()

    def _merged(self) -> dict[str, SinkStats]:
        from configurable_agents.observability.sinks.base import SinkStats

        with self._lock:
            sinks = list(self._sinks)
        merged: dict[str, SinkStats] = {}
        for sink in sinks:
            try:
                health = dict(sink.pipeline_health()) or {sink.name: sink.counters.snapshot()}
            except Exception:  # a scrape must never fail because one pipeline did
                logger.debug("reading pipeline health failed", exc_info=True)
                continue
            for name, stats in health.items():
                total = merged.setdefault(name, SinkStats())
                for field in (*COUNTERS, "queue_depth"):
                    setattr(total, field, getattr(total, field) + getattr(stats, field))
                total.up = total.up and stats.up
        return merged
