"""Production traffic (issue #17): parallel writers, sampling exactness, catch-up after an outage.

Against the team setup: a real ``mlflow server --workers 4`` on a private PostgreSQL
cluster (the tests' helpers in ``tests/servers.py``), behind the tests' latency proxy
(``LatencyProxy``: a fixed delay added to every request). Three measurements:

- **throughput**: workflows persisted per second by the handler with ``export_workers``
  1, 4 and 8 (no MLflow trace, so it writes what the baseline writes), next to the
  hand-written sequential ``MlflowClient`` sequence (``benchmarks/baseline.py``) in the
  same run, at 0 ms and 5 ms added per request;
- **sampling**: traffic offered at a fixed rate with ``sample_rate: 0.1``; at the end the
  spool is empty and ``report costs`` totals equal the ground truth summed in-process
  from every workflow's model calls; caller latency at low load with 0.1 and 1;
- **catch-up**: traffic at L workflows/s, an outage of T seconds (server stopped), then the
  time until the spool is empty while traffic continues: drain rate / L.

Run: ``.venv/bin/python -m benchmarks.bench_production`` (``make bench`` runs it after the
main sections); ``--quick`` for a smoke run. Numbers go to ``docs/BENCHMARKS.md`` between
the ``production`` markers and to ``benchmarks/results/production.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from configurable_agents.observability.sinks.base import Sink

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
JSON_OUT = ROOT / "benchmarks" / "results" / "production.json"
BEGIN, END = "<!-- production:begin -->", "<!-- production:end -->"
SECTIONS = ("throughput", "sampling", "catchup", "requests", "ceiling", "direct_db",
            "scale_out")


@dataclass(slots=True)
class Sizes:
    baseline_workflows: int = 6
    ours_workflows: int = 12
    workers: tuple[int, ...] = (1, 4, 8)
    delays_ms: tuple[float, ...] = (0.0, 5.0)
    sampling_seconds: float = 60.0
    sampling_rate_per_s: float = 50.0
    overhead_invocations: int = 150
    catchup_capacity_workflows: int = 40
    catchup_load_fraction: float = 0.5
    catchup_outage_s: float = 30.0
    catchup_max_s: float = 90.0
    requests_workflows: int = 16
    ceiling_seconds: float = 40.0
    ceiling_threads: int = 16
    ceiling_rounds: int = 1
    direct_seconds: float = 30.0
    scale_instances: tuple[int, ...] = (1, 2)
    scale_seconds: float = 30.0

    @classmethod
    def quick(cls) -> Sizes:
        return cls(4, 8, (1, 4), (0.0, 5.0), 4.0, 20.0, 20, 10, 0.5, 3.0, 60.0,
                   6, 4.0, 4, 1, 3.0, (1, 2), 3.0)


@dataclass(slots=True)
class Results:
    sizes: dict[str, Any]
    throughput: list[dict[str, Any]] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)
    catchup: dict[str, Any] = field(default_factory=dict)
    ceiling: dict[str, Any] = field(default_factory=dict)  # requests, ceiling, direct, scale


@contextmanager
def team_server(workers: int = 4) -> Iterator[Any]:
    """PostgreSQL + ``mlflow server --workers N`` (local artifact root), stopped at the end."""
    from tests.servers import MlflowServer, start_postgres

    root = Path(tempfile.mkdtemp(prefix="ca-bench-prod-"))
    cluster = start_postgres()
    try:
        backend = cluster.create_database(f"bench_{uuid.uuid4().hex[:8]}")
        from benchmarks.bench_ceiling import LOADED_HOST_ARGS

        server = MlflowServer(backend, root / "artifacts", workers=workers,
                              extra_args=LOADED_HOST_ARGS)
        server.start()
        server.cluster = cluster  # the scale-out section creates its own database in it
        try:
            yield server
        finally:
            server.stop()
    finally:
        cluster.stop()


def handler(uri: str, experiment: str, spool: Path, sinks: tuple[Any, ...] = (),
            **config: Any) -> Any:
    from configurable_agents.config import MLFlowConfig
    from configurable_agents.observability import MLflowCallbackHandler

    settings = {"log_traces": False, "queue_size": 100_000, "flush_timeout_s": 600, **config}
    return MLflowCallbackHandler(
        MLFlowConfig(enabled=True, tracking_uri=uri, experiment_name=experiment,
                     spool_dir=str(spool), **settings),
        workflow_name="article_writer", workflow_version="1.0.0",
        sinks=list(sinks),
    )


def measure_throughput(server: Any, sizes: Sizes, tmp: Path, say: Any) -> list[dict[str, Any]]:
    from mlflow.tracking import MlflowClient
    from tests.servers import LatencyProxy

    from benchmarks.baseline import write_workflow
    from benchmarks.workloads import article_writer

    workload = article_writer()
    rows = []
    for delay_ms in sizes.delays_ms:
        with LatencyProxy(server.port, delay_ms / 1000) as proxy:
            client = MlflowClient(proxy.url)
            exp = client.create_experiment(f"baseline-{uuid.uuid4().hex[:6]}")
            write_workflow(client, exp)  # warm-up
            t0 = time.perf_counter()
            for _ in range(sizes.baseline_workflows):
                write_workflow(client, exp)
            baseline = sizes.baseline_workflows / (time.perf_counter() - t0)
            row: dict[str, Any] = {"delay_ms": delay_ms, "baseline_per_s": baseline}
            say(f"throughput {delay_ms:g} ms: baseline {baseline:.1f}/s")
            for workers in sizes.workers:
                ours = handler(proxy.url, f"ours-{workers}-{uuid.uuid4().hex[:6]}",
                               tmp / f"spool-{delay_ms}-{workers}", export_workers=workers)
                workload.invoke([ours])
                assert ours.flush(600)
                t0 = time.perf_counter()
                for _ in range(sizes.ours_workflows):
                    workload.invoke([ours])
                assert ours.flush(600)
                rate = sizes.ours_workflows / (time.perf_counter() - t0)
                stats = ours.stats().sinks["mlflow"]
                ours.close(60)
                assert stats.spooled == 0, "a throughput run must not spool"
                row[f"workers_{workers}_per_s"] = rate
                row[f"workers_{workers}_ratio"] = rate / baseline
                say(f"  export_workers={workers}: {rate:.1f}/s ({rate / baseline:.2f}x)")
            rows.append(row)
    return rows


class GroundTruth(Sink):
    """A sink that sums every workflow's calls in-process: the truth reports must match."""

    name = "truth"

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.costs: list[float] = []
        self.input_tokens = 0
        self.output_tokens = 0
        self.workflows = 0

    def export(self, facts: Any) -> None:
        calls = [c for _plan, c in facts.model_calls()]
        with self.lock:
            self.workflows += 1
            self.costs.extend(c.cost_usd for c in calls)
            self.input_tokens += sum(c.usage.input for c in calls)
            self.output_tokens += sum(c.usage.output for c in calls)


def paced(seconds: float, rate: float, invoke: Any) -> list[float]:
    """Invoke at ``rate`` per second for ``seconds``; returns each caller latency (ms)."""
    latencies, interval = [], 1.0 / rate
    start = time.perf_counter()
    n = 0
    while (now := time.perf_counter()) - start < seconds:
        due = start + n * interval
        if now < due:
            time.sleep(due - now)
        t0 = time.perf_counter()
        invoke()
        latencies.append((time.perf_counter() - t0) * 1e3)
        n += 1
    return latencies


def measure_sampling(server: Any, sizes: Sizes, tmp: Path, say: Any) -> dict[str, Any]:
    from benchmarks.workloads import article_writer
    from configurable_agents.reports.reporting import cost_report

    workload = article_writer()
    overhead = {}
    for rate in (1.0, 0.1):  # low load: caller latency only
        h = handler(server.url, f"overhead-{rate}-{uuid.uuid4().hex[:6]}",
                    tmp / f"spool-overhead-{rate}", sample_rate=rate)
        workload.invoke([h])
        lat: list[float] = []
        for _ in range(sizes.overhead_invocations):
            t0 = time.perf_counter()
            workload.invoke([h])
            lat.append((time.perf_counter() - t0) * 1e3)
            time.sleep(0.02)
        h.close(120)
        overhead[str(rate)] = {"median_ms": statistics.median(lat),
                               "p95_ms": sorted(lat)[int(0.95 * (len(lat) - 1))]}
    say(f"sampling overhead: {overhead}")
    truth = GroundTruth()
    experiment = f"sampled-{uuid.uuid4().hex[:6]}"
    spool = tmp / "spool-sampled"
    h = handler(server.url, experiment, spool, (truth,), sample_rate=0.1)
    say(f"sampling: {sizes.sampling_seconds:g} s at {sizes.sampling_rate_per_s:g}/s")
    latencies = paced(sizes.sampling_seconds, sizes.sampling_rate_per_s,
                      lambda: workload.invoke([h]))
    offered = len(latencies)
    flushed = h.flush(600)
    sink = h._pipeline.sink("mlflow")
    spool_left = len(sink.spool) if sink is not None else -1
    stats = h.stats().sinks["mlflow"]
    h.close(120)
    totals = cost_report(("workflow",), tracking_uri=server.url, experiments=[experiment]).totals
    truth_cost = math.fsum(truth.costs)
    return {
        "offered": offered, "achieved_rate_per_s": offered / sizes.sampling_seconds,
        "caller_median_ms": statistics.median(latencies), "flushed": flushed,
        "spool_left": spool_left, "exported_full": stats.exported, "spooled": stats.spooled,
        "truth_workflows": truth.workflows, "report_runs": totals.runs,
        "truth_input_tokens": truth.input_tokens, "report_input_tokens": totals.input_tokens,
        "truth_output_tokens": truth.output_tokens, "report_output_tokens": totals.output_tokens,
        "truth_cost_usd": truth_cost, "report_cost_usd": totals.cost_usd,
        "cost_abs_error": abs(truth_cost - totals.cost_usd), "overhead": overhead,
    }


def measure_capacity(server: Any, tmp: Path, workflows: int) -> float:
    """Workflows/s this server absorbs from one handler (default workers), burst then flush."""
    from benchmarks.workloads import article_writer

    workload = article_writer()
    h = handler(server.url, f"capacity-{uuid.uuid4().hex[:6]}", tmp / "spool-capacity")
    workload.invoke([h])
    assert h.flush(600)
    t0 = time.perf_counter()
    for _ in range(workflows):
        workload.invoke([h])
    assert h.flush(600)
    rate = workflows / (time.perf_counter() - t0)
    h.close(60)
    return rate


def measure_catchup(server: Any, sizes: Sizes, tmp: Path, say: Any) -> dict[str, Any]:
    """An outage at a load below the server's capacity; time until the spool is empty.

    The offered load is ``catchup_load_fraction`` of the capacity measured first in the
    same run (the target assumes spare capacity: a server slower than the offered load
    can never drain). The clock starts when the restarted server answers; the spool's
    own file count (not the per-batch counters) says when it is empty.
    """
    from benchmarks.workloads import article_writer

    capacity = measure_capacity(server, tmp, sizes.catchup_capacity_workflows)
    rate = max(0.5, round(capacity * sizes.catchup_load_fraction, 1))
    say(f"catch-up: capacity {capacity:.1f}/s, offered {rate:g}/s")
    workload = article_writer()
    h = handler(server.url, f"catchup-{uuid.uuid4().hex[:6]}", tmp / "spool-catchup")
    sink = h._pipeline.sink("mlflow")
    invoke = lambda: workload.invoke([h])  # noqa: E731
    paced(2.0, rate, invoke)
    stopped = time.perf_counter()
    server.stop()
    say(f"catch-up: outage of {sizes.catchup_outage_s:g} s plus the restart, at {rate:g}/s")
    paced(sizes.catchup_outage_s, rate, invoke)
    restart = threading.Thread(target=server.start)  # traffic goes on while it restarts
    restart.start()
    while restart.is_alive():
        paced(1.0, rate, invoke)
    restart.join()
    restarted = time.perf_counter()
    outage_s = restarted - stopped  # the server answered nothing from stop to here
    spooled = sink.counters.get("spooled")
    first_replay: float | None = None
    done_at: float | None = None
    interval = 1.0 / rate
    n = 0
    while time.perf_counter() - restarted < max(sizes.catchup_max_s, 2.5 * outage_s):
        due = restarted + n * interval
        if (now := time.perf_counter()) < due:
            time.sleep(due - now)
        invoke()
        n += 1
        pending = len(sink.spool)
        if first_replay is None and pending < spooled:
            first_replay = time.perf_counter()
        if n % max(1, int(5 * rate)) == 0:
            say(f"  +{time.perf_counter() - restarted:.0f} s: {pending} still spooled, "
                f"{sink.counters.get('exported')} new written")
        if pending == 0:
            done_at = time.perf_counter()
            break
    spool_left = len(sink.spool)
    exported_new = sink.counters.get("exported")
    h.close(120)
    empty_s = (done_at - restarted) if done_at else None
    return {
        "capacity_per_s": capacity, "offered_per_s": rate, "outage_s": outage_s,
        "spooled": spooled,
        "recovery_detected_s": (first_replay - restarted) if first_replay else None,
        "empty_after_s": empty_s, "emptied": done_at is not None,
        "empty_ratio_to_outage": (empty_s / outage_s) if empty_s is not None else None,
        "drain_rate_per_s": (spooled / empty_s) if empty_s else None,
        "spool_left": spool_left, "exported_new": exported_new,
    }


def render(results: Results) -> str:
    lines = [BEGIN, "", "### Production traffic (`benchmarks/bench_production.py`)", "",
             "Persist throughput against `mlflow server --workers 4` on PostgreSQL (workflows/s; "
             "ratio to the hand-written sequential `MlflowClient` sequence in the same run):", "",
             "| added per request | sequential baseline | "
             + " | ".join(f"export_workers={w}" for w in results.sizes["workers"]) + " |",
             "|---|---|" + "---|" * len(results.sizes["workers"])]
    for row in results.throughput:
        cells = [f"{row[f'workers_{w}_per_s']:.1f} ({row[f'workers_{w}_ratio']:.2f}x)"
                 for w in results.sizes["workers"]]
        lines.append(f"| {row['delay_ms']:g} ms | {row['baseline_per_s']:.1f} | "
                     + " | ".join(cells) + " |")
    s = results.sampling
    if s:
        lines += ["", f"Sampling (`sample_rate: 0.1`, {results.sizes['sampling_seconds']:g} s "
                  f"offered at {results.sizes['sampling_rate_per_s']:g}/s): "
                  f"{s['offered']} workflows (achieved {s['achieved_rate_per_s']:.1f}/s), "
                  f"{s['exported_full']} written in full, spool left {s['spool_left']}; "
                  f"`report costs`: {s['report_runs']} runs vs {s['truth_workflows']} true, "
                  f"tokens {s['report_input_tokens']}/{s['report_output_tokens']} vs "
                  f"{s['truth_input_tokens']}/{s['truth_output_tokens']}, cost "
                  f"{s['report_cost_usd']:.9f} vs {s['truth_cost_usd']:.9f} USD "
                  f"(|error| {s['cost_abs_error']:.1e}).",
                  "", "Caller latency at low load (median / p95 ms): "
                  + "; ".join(f"sample_rate {k}: {v['median_ms']:.2f} / {v['p95_ms']:.2f}"
                              for k, v in s["overhead"].items()) + "."]
    c = results.catchup
    if c and "capacity_per_s" in c:
        verdict = ("target met" if c["emptied"] and c["empty_ratio_to_outage"] <= 2.0
                   else "target NOT met")
        lines += ["", f"Catch-up: this server absorbed {c['capacity_per_s']:.1f} workflows/s "
                  f"from one handler; offered {c['offered_per_s']:g}/s; the outage (stop to "
                  f"answering again, restart included) lasted {c['outage_s']:.1f} s and spooled "
                  f"{c['spooled']}; the first replayed workflow left the spool "
                  f"{_num(c['recovery_detected_s'])} s after the server answered; "
                  + (f"the spool was empty after {c['empty_after_s']:.1f} s "
                     f"({c['empty_ratio_to_outage']:.2f}x the outage; target <= 2x: {verdict})"
                     if c["emptied"] else f"{c['spool_left']} still spooled at the end of the "
                     f"window ({verdict})")
                  + f", while new traffic continued ({c['exported_new']} new written)."]
    from benchmarks.bench_ceiling import render as render_limits

    lines += render_limits(results.ceiling)
    lines += ["", END]
    return "\n".join(lines)


def merge_previous(results: Results, previous: dict[str, Any]) -> Results:
    """``results`` of an ``--only`` run completed with the previous run's other sections."""
    merged = Results(sizes={**previous.get("sizes", {}), **results.sizes})
    merged.throughput = results.throughput or previous.get("throughput", [])
    merged.sampling = results.sampling or previous.get("sampling", {})
    merged.catchup = results.catchup or previous.get("catchup", {})
    merged.ceiling = {**previous.get("ceiling", {}), **results.ceiling}
    return merged


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def write_doc(path: Path, block: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def run(sizes: Sizes, sections: tuple[str, ...], say: Any) -> Results:
    import logging

    # As in the tests: MLflow's own HTTP retries (7, with backoff) would hold each write to
    # a stopped server for minutes; the sink retries, trips its breaker and spools instead.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("configurable_agents.observability").setLevel(logging.ERROR)
    results = Results(sizes=asdict(sizes))
    tmp = Path(tempfile.mkdtemp(prefix="ca-bench-prod-spool-"))
    with team_server(workers=4) as server:
        if "throughput" in sections:
            results.throughput = measure_throughput(server, sizes, tmp, say)
        if "sampling" in sections:
            results.sampling = measure_sampling(server, sizes, tmp, say)
        if "catchup" in sections:
            results.catchup = measure_catchup(server, sizes, tmp, say)
        measure_limits(server, sizes, sections, tmp, results.ceiling, say)
    return results


def measure_limits(server: Any, sizes: Sizes, sections: tuple[str, ...], tmp: Path,
                   out: dict[str, Any], say: Any) -> None:
    """Issue #30's sections (``benchmarks/bench_ceiling.py``) on the same team server."""
    from benchmarks import bench_ceiling as ceiling

    # A saturated server on a loaded 2-core machine can take seconds per call: these
    # sections measure capacity, not outages (the catch-up section wants the short timeout).
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "300"
    if "requests" in sections:
        out["requests"] = ceiling.measure_requests(server, tmp, sizes.requests_workflows, say)
    if "ceiling" in sections:
        out["ceiling"] = ceiling.measure_ceiling(server, tmp, sizes.ceiling_seconds,
                                                 sizes.ceiling_threads, sizes.ceiling_rounds,
                                                 say)
    if "direct_db" in sections:
        out["direct_db"] = ceiling.measure_direct_db(server.backend_uri, tmp,
                                                     sizes.direct_seconds,
                                                     sizes.ceiling_threads, say)
    if "scale_out" in sections:
        out["scale_out"] = ceiling.measure_scale_out(server.cluster, tmp, sizes.scale_instances,
                                                     sizes.scale_seconds, say)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (smoke run)")
    parser.add_argument("--only", action="append", choices=SECTIONS)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[production {time.perf_counter() - started:6.1f}s] {message}", flush=True)

    sizes = Sizes.quick() if args.quick else Sizes()
    results = run(sizes, tuple(args.only or SECTIONS), say)
    if args.only and JSON_OUT.exists():  # keep the last numbers of the sections not rerun
        results = merge_previous(results, json.loads(JSON_OUT.read_text(encoding="utf-8")))
    block = render(results)
    JSON_OUT.parent.mkdir(parents=True, exist_ok=True)
    JSON_OUT.write_text(json.dumps(asdict(results), indent=2) + "\n", encoding="utf-8")
    if not args.no_doc:
        write_doc(DOC, block)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
