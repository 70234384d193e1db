"""The measurement loops: latency, persist throughput, per-event scaling, memory.

Noise control on a small shared machine: modes are interleaved invocation by
invocation in a shuffled order each round, overheads are *paired* (a mode's call
minus the no-callback call of the same round) and every figure is a median.
Each section runs until its minimum sample count is reached and then until its time
budget is spent, so ``make bench`` stays bounded on a busy machine.
"""

from __future__ import annotations

import gc
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from benchmarks.baseline import write_workflow
from benchmarks.modes import CountingHandler, Mode, NoCallbacks, NoopMode, OursMode
from benchmarks.workloads import Workload, article_writer, sequential_chain


@dataclass(slots=True)
class Budget:
    """Minimum samples, then keep going while time is left (never past ``max_rounds``)."""

    seconds: float
    min_rounds: int
    max_rounds: int

    def keep_going(self, rounds: int, started: float) -> bool:
        if rounds < self.min_rounds:
            return True
        return rounds < self.max_rounds and time.perf_counter() - started < self.seconds


@dataclass(slots=True)
class Samples:
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    persist_ms: list[float] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no data."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": percentile(values, 50),
        "p95": percentile(values, 95),
        "min": min(values) if values else float("nan"),
    }


def paired_overhead(mode: Samples, reference: Samples, metric: str = "wall_ms") -> float:
    """Median over rounds of (mode's call - the reference's call in the same round)."""
    by_round = dict(zip(reference.rounds, getattr(reference, metric), strict=True))
    diffs = [v - by_round[r] for r, v in zip(mode.rounds, getattr(mode, metric), strict=True)
             if r in by_round]
    return percentile(diffs, 50)


def call_once(mode: Mode, invoke: Callable[[list[Any]], Any]) -> tuple[float, float, float]:
    """(caller wall ms, caller-thread CPU ms, ms until persisted incl. flush) of one call."""
    mode.activate()
    try:
        callbacks = mode.callbacks()
        t0, c0 = time.perf_counter(), time.thread_time()
        invoke(callbacks)
        t1, c1 = time.perf_counter(), time.thread_time()
        mode.flush()
        t2 = time.perf_counter()
    finally:
        mode.deactivate()
    return (t1 - t0) * 1e3, (c1 - c0) * 1e3, (t2 - t0) * 1e3


def _experiment(tag: str, *parts: str) -> str:
    return "-".join(("bench", tag, *parts))


# ---- 1. caller latency and time until persisted, per workload and mode ---------------------


def latency(
    workload: Workload,
    modes: Sequence[Mode],
    store: str,
    tag: str,
    budget: Budget,
    rng: random.Random,
    warmup: int = 1,
) -> dict[str, Any]:
    active = [m for m in modes if m.skip_reason is None and m.applies_to(workload)]
    skipped = {m.name: m.skip_reason for m in modes if m.skip_reason is not None}
    for mode in active:
        mode.open(store, _experiment(tag, workload.name, mode.name), workload)
    samples = {m.name: Samples() for m in active}
    try:
        for _ in range(warmup):
            for mode in active:
                call_once(mode, workload.invoke)
        started, rounds = time.perf_counter(), 0
        while budget.keep_going(rounds, started):
            order = [m for m in active if rounds % m.stride == 0]
            rng.shuffle(order)
            for mode in order:
                wall, cpu, persist = call_once(mode, workload.invoke)
                s = samples[mode.name]
                s.wall_ms.append(wall)
                s.cpu_ms.append(cpu)
                s.persist_ms.append(persist)
                s.rounds.append(rounds)
            rounds += 1
        elapsed = time.perf_counter() - started
    finally:
        for mode in active:
            mode.close()
    reference = samples["none"]
    results: dict[str, Any] = {}
    for mode in active:
        s = samples[mode.name]
        results[mode.name] = {
            "label": mode.label,
            "wall_ms": summary(s.wall_ms),
            "caller_cpu_ms": summary(s.cpu_ms),
            "persisted_ms": summary(s.persist_ms) if mode.persists else None,
            "overhead_ms": paired_overhead(s, reference),
            "overhead_cpu_ms": paired_overhead(s, reference, "cpu_ms"),
        }
    return {
        "workload": workload.name,
        "description": workload.description,
        "rounds": rounds,
        "seconds": round(elapsed, 1),
        "modes": results,
        "skipped": skipped,
    }


# ---- 2. persisted workflows per second vs the hand-written MlflowClient sequence ------------


THROUGHPUT_VARIANTS: dict[str, dict[str, Any]] = {
    "ours_async": {"async_logging": True},
    "ours_async_no_traces": {"async_logging": True, "log_traces": False},
    "ours_sync": {"async_logging": False},
}


def throughput(
    store: str,
    tag: str,
    block: int,
    budget: Budget,
    rng: random.Random,
    variant_names: Sequence[str] = tuple(THROUGHPUT_VARIANTS),
) -> dict[str, Any]:
    """Back-to-back article-writer workflows until flushed, in interleaved blocks.

    ``ours_async_no_traces`` writes exactly what the hand-written sequence writes (runs,
    no MLflow trace), so it is the like-for-like comparison; ``ours_async`` is the default
    configuration, which also writes one trace per invocation.
    """
    client = MlflowClient(store)
    baseline_exp = client.create_experiment(_experiment(tag, "throughput", "baseline"))
    workload = article_writer()
    variants = {name: OursMode(**THROUGHPUT_VARIANTS[name]) for name in variant_names}
    for name, mode in variants.items():
        mode.open(store, _experiment(tag, "throughput", name), workload)
    # Warm-up: experiments created, imports and connections made, outside the clock.
    write_workflow(client, baseline_exp)
    for mode in variants.values():
        call_once(mode, workload.invoke)

    rates: dict[str, list[float]] = {"baseline": [], **{name: [] for name in variants}}
    ratios: dict[str, list[float]] = {name: [] for name in variants}
    caller_ms: list[float] = []

    def run_baseline() -> float:
        t0 = time.perf_counter()
        for _ in range(block):
            write_workflow(client, baseline_exp)
        return block / (time.perf_counter() - t0)

    def run_ours(mode: OursMode, record_caller: bool) -> float:
        t0 = time.perf_counter()
        for _ in range(block):
            c0 = time.perf_counter()
            workload.invoke(mode.callbacks())
            if record_caller:
                caller_ms.append((time.perf_counter() - c0) * 1e3)
        mode.flush()
        return block / (time.perf_counter() - t0)

    started, blocks = time.perf_counter(), 0
    try:
        while budget.keep_going(blocks, started):
            order = ["baseline", *variants]
            rng.shuffle(order)
            block_rates = {}
            for name in order:
                if name == "baseline":
                    block_rates[name] = run_baseline()
                else:
                    block_rates[name] = run_ours(variants[name], name == "ours_async")
            for name, rate in block_rates.items():
                rates[name].append(rate)
            for name in variants:
                ratios[name].append(block_rates[name] / block_rates["baseline"])
            blocks += 1
    finally:
        for mode in variants.values():
            mode.close()
    return {
        "block": block,
        "blocks": blocks,
        "seconds": round(time.perf_counter() - started, 1),
        "workflows_per_s": {name: summary(values) for name, values in rates.items()},
        "ratio_to_baseline": {name: percentile(values, 50) for name, values in ratios.items()},
        "ours_async_caller_ms_while_exporting": summary(caller_ms),
    }


# ---- 3. per-event caller cost at 10, 100, 1,000 nodes ----------------------------------------


def count_events(workload: Workload) -> int:
    counter = CountingHandler()
    workload.invoke([counter])
    return counter.events


def scaling(
    store: str,
    tag: str,
    sizes: Sequence[int],
    budgets: dict[int, Budget],
    rng: random.Random,
) -> dict[str, Any]:
    """Caller cost per callback event as the graph grows (ours async vs a no-op handler).

    This isolates the handler's own work on the caller thread: the experiment name is a
    tenant template the invocations never satisfy, with ``tenant_fail_closed``, so the
    exporter receives every workflow and discards it without I/O. Writing a 1,000-node
    workflow takes minutes of sqlite time that would otherwise compete for the GIL with
    the next measured call (the latency section measures that contention, with real
    writes, on the 20-node chain).
    """
    results: dict[str, Any] = {}
    for size in sizes:
        workload = sequential_chain(size)
        events = count_events(workload)
        modes: list[Mode] = [
            NoCallbacks(),
            NoopMode(),
            OursMode(async_logging=True, tenant_fail_closed=True, experiment_template=True),
        ]
        section = latency(workload, modes, store, tag, budgets[size], rng, warmup=1)
        none = section["modes"]["none"]["wall_ms"]["median"]
        per_event: dict[str, float] = {}
        per_event_cpu: dict[str, float] = {}
        for name in ("noop", "ours_async"):
            per_event[name] = section["modes"][name]["overhead_ms"] * 1e3 / events
            per_event_cpu[name] = section["modes"][name]["overhead_cpu_ms"] * 1e3 / events
        results[str(size)] = {
            "events": events,
            "rounds": section["rounds"],
            "none_ms": none,
            "noop_ms": section["modes"]["noop"]["wall_ms"]["median"],
            "ours_async_ms": section["modes"]["ours_async"]["wall_ms"]["median"],
            "per_event_us": per_event,
            "per_event_cpu_us": per_event_cpu,
        }
    first = results[str(sizes[0])]
    for size in sizes:
        entry = results[str(size)]
        for key, ratio in (("per_event_us", "ours_vs_smallest"),
                           ("per_event_cpu_us", "ours_cpu_vs_smallest")):
            base = first[key]["ours_async"]
            entry[ratio] = entry[key]["ours_async"] / base if base else None
    return results


# ---- 4. RSS and internal state over many invocations through one handler -------------------


def rss_mb() -> float:
    """Resident set size now (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def _rss_run(
    handler: Any, workload: Workload, invocations: int, checkpoints: int, warmup: int
) -> dict[str, Any]:
    """RSS and handler state while ``invocations`` calls go through one handler."""
    for _ in range(warmup):
        workload.invoke([handler])
    handler.flush(600)
    gc.collect()
    start_rss = peak = rss_mb()
    trace: list[dict[str, Any]] = []
    every = max(1, invocations // checkpoints)
    t0 = time.perf_counter()
    for i in range(1, invocations + 1):
        workload.invoke([handler])
        if i % every == 0 or i == invocations:
            rss = rss_mb()
            peak = max(peak, rss)
            stats = handler.stats()
            trace.append({
                "invocations": i,
                "rss_mb": round(rss, 1),
                "active_runs": stats.active_runs,
                "pending_workflows": stats.pending_workflows,
            })
    loop_s = time.perf_counter() - t0
    flushed = handler.flush(600)
    flush_s = time.perf_counter() - t0 - loop_s
    gc.collect()
    end_rss = rss_mb()
    after = handler.stats()
    handler.close(60)
    return {
        "invocations": invocations,
        "loop_seconds": round(loop_s, 1),
        "flush_seconds": round(flush_s, 1),
        "flushed": flushed,
        "start_rss_mb": round(start_rss, 1),
        "peak_rss_mb": round(peak, 1),
        "end_rss_mb": round(end_rss, 1),
        "growth_mb": round(end_rss - start_rss, 1),
        "trace": trace,
        "after_flush": after.as_dict(),
    }


def memory(
    store: str, tag: str, invocations: int, persisted_seconds: float, checkpoints: int = 10
) -> dict[str, Any]:
    """RSS and internal state over many article-writer invocations through one handler.

    Two runs, because no MLflow store persists 10,000 workflows in a benchmark's time
    (tens per second on sqlite against hundreds of invocations per second):

    - ``caller``: ``invocations`` calls through one async handler whose exporter discards
      each finished workflow (tenant fail-closed): every record is built, queued and
      released exactly as in production, so a leak on the hot path shows here;
    - ``persisted``: as many calls as ``persisted_seconds`` allows through one async handler
      writing for real (``block_on_full``, so none is spooled), then flushed: the exporter's
      side must leave nothing behind either.
    """
    workload = article_writer()
    caller_handler = OursMode(
        async_logging=True, experiment_template=True, tenant_fail_closed=True
    ).make_handler(store, _experiment(tag, "memory-caller"), workload.name)
    caller = _rss_run(caller_handler, workload, invocations, checkpoints, warmup=50)

    real = OursMode(async_logging=True, block_on_full=True, queue_size=50)
    real_handler = real.make_handler(store, _experiment(tag, "memory-persisted"), workload.name)
    for _ in range(3):
        workload.invoke([real_handler])
    real_handler.flush(600)
    gc.collect()
    start_rss = rss_mb()
    t0 = time.perf_counter()
    count = 0
    while count < invocations and (count < 5 or time.perf_counter() - t0 < persisted_seconds):
        workload.invoke([real_handler])
        count += 1
    flushed = real_handler.flush(600)
    gc.collect()
    persisted = {
        "invocations": count,
        "seconds": round(time.perf_counter() - t0, 1),
        "flushed": flushed,
        "start_rss_mb": round(start_rss, 1),
        "end_rss_mb": round(rss_mb(), 1),
        "after_flush": real_handler.stats().as_dict(),
    }
    real_handler.close(60)
    return {"caller": caller, "persisted": persisted}


def new_store(root: Path | None = None) -> tuple[str, Path]:
    """A fresh sqlite MLflow store (schema created once: it takes seconds)."""
    directory = Path(tempfile.mkdtemp(prefix="bench-mlflow-", dir=root))
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    MlflowClient(uri).search_experiments(max_results=1)
    return uri, directory


def run_tag() -> str:
    return uuid.uuid4().hex[:6]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
