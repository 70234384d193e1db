"""The server's own limit (issue #30): requests per workflow, saturation, direct DB, scale-out.

Four measurements, each against the team setup of ``bench_production`` (PostgreSQL; S3 via
moto for the scale-out) and each quoted as a ratio within the same run:

- **requests per workflow**, counted on the wire by :class:`tests.counting_proxy.CountingProxy`
  (5 ms added per request, as the production bench): the floor (the hand-written runs-only
  ``MlflowClient`` sequence, ``benchmarks/baseline.py``), ours without and with traces;
- **ceiling**: the floor from many parallel client threads until the server saturates (what
  no client can beat on that server), next to ours with traces on (``export_workers`` 8)
  on the same server, in the same run;
- **direct database**: the same two writers with ``tracking_uri: postgresql://...`` and no
  HTTP server at all (ADR-011's team set-up written straight to its database);
- **scale-out**: 1..N ``mlflow server`` instances over one PostgreSQL and one S3 bucket,
  writers spread round-robin over them (8 per instance): throughput per instance count.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

Say = Callable[[str], None]
WRITERS_PER_SERVER = 8
# uvicorn kills a worker that misses a 5 s health check; on a saturated 2-core host that
# drops in-flight requests, so servers measured at saturation get a longer one.
LOADED_HOST_ARGS = ["--uvicorn-opts", "--timeout-worker-healthcheck 120"]


def floor_rate(uris: Sequence[str], experiment_id: str, threads: int, seconds: float) -> float:
    """Workflows/s of the hand-written sequence from ``threads`` threads (round-robin URIs)."""
    from mlflow.tracking import MlflowClient

    from benchmarks.baseline import write_workflow

    done = [0] * threads
    errors: list[BaseException] = []
    stop_at = time.monotonic() + seconds

    def work(i: int) -> None:
        client = MlflowClient(uris[i % len(uris)])
        while time.monotonic() < stop_at:
            try:
                write_workflow(client, experiment_id)
            except Exception as exc:  # counted below: a failing floor is no ceiling
                errors.append(exc)
                return
            done[i] += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} hand-written writer(s) failed: {errors[0]!r}")
    return sum(done) / (time.perf_counter() - started)


def ours_rate(uris: Sequence[str], experiment: str, tmp: Path, workflows: int,
              workers: int, log_traces: bool = True,
              after_warmup: Callable[[], None] | None = None) -> float:
    """Workflows/s of our handler(s): ``workflows`` invoked round-robin, then flushed."""
    from benchmarks.bench_production import handler
    from benchmarks.workloads import article_writer

    workload = article_writer()
    handlers = [handler(uri, experiment, tmp / f"spool-{uuid.uuid4().hex[:6]}",
                        export_workers=workers, log_traces=log_traces) for uri in uris]
    try:
        for h in handlers:  # warm-up: experiment, imports, connections
            workload.invoke([h])
            assert h.flush(600)
        if after_warmup is not None:
            after_warmup()
        started = time.perf_counter()
        for n in range(workflows):
            workload.invoke([handlers[n % len(handlers)]])
        for h in handlers:
            assert h.flush(900)
        rate = workflows / (time.perf_counter() - started)
        for h in handlers:
            stats = h.stats().sinks["mlflow"]
            assert stats.spooled == 0 and stats.failed == 0, "a throughput run must not spool"
        return rate
    finally:
        for h in handlers:
            h.close(120)


def measure_requests(server: Any, tmp: Path, workflows: int, say: Say) -> dict[str, Any]:
    """Requests per workflow on the wire: floor, ours without traces, ours with traces."""
    from mlflow.tracking import MlflowClient
    from tests.counting_proxy import CountingProxy

    from benchmarks.baseline import write_workflow

    out: dict[str, Any] = {}
    with CountingProxy(server.port, delay=0.005) as proxy:
        client = MlflowClient(proxy.url)
        experiment_id = client.create_experiment(f"floor-{uuid.uuid4().hex[:6]}")
        write_workflow(client, experiment_id)
        proxy.reset()
        for _ in range(workflows):
            write_workflow(client, experiment_id)
        # Plain dicts: dataclasses.asdict would rebuild a Counter from its (key, value) pairs.
        out["floor"] = {"per_workflow": proxy.total() / workflows,
                        "by_endpoint": dict(proxy.counts())}
        for name, traces in (("ours_no_traces", False), ("ours_traces", True)):
            # After a warm-up workflow (experiment lookups, connections), as for the floor;
            # the span batches are sent by size, by age and by the final flush.
            ours_rate([proxy.url], f"{name}-{uuid.uuid4().hex[:6]}", tmp, workflows,
                      WRITERS_PER_SERVER, log_traces=traces, after_warmup=proxy.reset)
            out[name] = {"per_workflow": proxy.total() / workflows,
                         "by_endpoint": dict(proxy.counts())}
        say("requests per workflow: " + ", ".join(
            f"{k} {v['per_workflow']:.2f}" for k, v in out.items()))
    return out


def measure_ceiling(server: Any, tmp: Path, seconds: float, threads: int, rounds: int,
                    say: Say) -> dict[str, Any]:
    """Server saturation (hand-written, parallel) vs ours with traces on, interleaved rounds."""
    from mlflow.tracking import MlflowClient
    from tests.counting_proxy import CountingProxy

    ceilings, ours, ratios = [], [], []
    with CountingProxy(server.port, delay=0.005) as proxy:
        experiment_id = MlflowClient(proxy.url).create_experiment(f"ceiling-{uuid.uuid4().hex[:6]}")
        for r in range(rounds):
            ceiling = floor_rate([proxy.url], experiment_id, threads, seconds)
            count = max(24, int(ceiling * seconds))
            rate = ours_rate([proxy.url], f"ceiling-ours-{uuid.uuid4().hex[:6]}", tmp, count,
                             WRITERS_PER_SERVER)
            ceilings.append(ceiling)
            ours.append(rate)
            ratios.append(rate / ceiling)
            say(f"ceiling round {r + 1}: server {ceiling:.2f}/s ({threads} threads), "
                f"ours with traces {rate:.2f}/s = {rate / ceiling:.2f}x")
    return {"threads": threads, "ceiling_per_s": ceilings, "ours_traces_per_s": ours,
            "ratios": ratios}


def measure_direct_db(backend: str, tmp: Path, seconds: float, threads: int,
                      say: Say) -> dict[str, Any]:
    """Writers against ``postgresql://`` with no HTTP server: the floor (parallel) and ours."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(backend)
    artifacts = (tmp / "direct-artifacts").as_uri()
    floor_exp = client.create_experiment(f"direct-floor-{uuid.uuid4().hex[:6]}",
                                         artifact_location=f"{artifacts}/floor")
    floor = floor_rate([backend], floor_exp, threads, seconds)
    name = f"direct-ours-{uuid.uuid4().hex[:6]}"
    client.create_experiment(name, artifact_location=f"{artifacts}/ours")  # not ./mlruns
    ours = ours_rate([backend], name, tmp, max(24, int(floor * seconds)), WRITERS_PER_SERVER)
    say(f"direct database: floor {floor:.2f}/s ({threads} threads), ours {ours:.2f}/s")
    return {"threads": threads, "floor_per_s": floor, "ours_traces_per_s": ours,
            "ratio": ours / floor}


@contextmanager
def servers_over_one_store(backend: str, count: int, root: Path) -> Iterator[list[Any]]:
    """``count`` ``mlflow server`` instances (2 workers each) over one database and S3 bucket."""
    from tests.servers import MlflowServer, S3Server

    bucket = "scale-out"
    with ExitStack() as stack:
        s3 = S3Server(bucket, root)
        s3.start()
        stack.callback(s3.stop)
        servers = []
        for i in range(count):
            server = MlflowServer(backend, root / f"artifacts-{i}", workers=2,
                                  artifacts_destination=f"s3://{bucket}", env=s3.env,
                                  extra_args=LOADED_HOST_ARGS)
            server.start()
            stack.callback(server.stop)
            servers.append(server)
        yield servers


def measure_scale_out(cluster: Any, tmp: Path, instances: Sequence[int], seconds: float,
                      say: Say) -> list[dict[str, Any]]:
    """Per instance count: the floor's saturation and ours with traces, writers round-robin."""
    from mlflow.tracking import MlflowClient

    rows = []
    backend = cluster.create_database(f"scale_{uuid.uuid4().hex[:8]}")
    with servers_over_one_store(backend, max(instances), Path(tempfile.mkdtemp())) as servers:
        for count in instances:
            uris = [s.url for s in servers[:count]]
            threads = WRITERS_PER_SERVER * count
            experiment_id = MlflowClient(uris[0]).create_experiment(
                f"scale-floor-{count}-{uuid.uuid4().hex[:6]}")
            floor = floor_rate(uris, experiment_id, threads, seconds)
            ours = ours_rate(uris, f"scale-ours-{count}-{uuid.uuid4().hex[:6]}", tmp,
                             max(24, int(floor * seconds)), WRITERS_PER_SERVER)
            rows.append({"instances": count, "threads": threads, "floor_per_s": floor,
                         "ours_traces_per_s": ours})
            say(f"scale-out {count} instance(s): floor {floor:.2f}/s, ours {ours:.2f}/s")
    return rows


def render(results: dict[str, Any]) -> list[str]:
    """Markdown lines for the production block (ratios first, rates beside them)."""
    lines: list[str] = []
    req = results.get("requests")
    if req:
        floor = req["floor"]["per_workflow"]
        lines += ["", "Requests per workflow (article writer: 3 runs), counted on the wire "
                  "(`tests/counting_proxy.py`):", "",
                  "| writer | requests per workflow | vs the floor |", "|---|---:|---:|"]
        for key, label in (("floor", "hand-written runs-only sequence (the floor)"),
                           ("ours_no_traces", "ours, traces off"),
                           ("ours_traces", "ours, traces on (default)")):
            per = req[key]["per_workflow"]
            lines.append(f"| {label} | {per:.2f} | {per / floor:.2f}x |")
    ceil = results.get("ceiling")
    if ceil:
        import statistics

        lines += ["", f"Ceiling: the floor from {ceil['threads']} parallel threads saturates "
                  f"the server at {statistics.median(ceil['ceiling_per_s']):.2f} workflows/s "
                  "(median of rounds); ours with traces on (`export_workers: 8`) on the same "
                  f"server: {statistics.median(ceil['ours_traces_per_s']):.2f}/s, "
                  f"**{statistics.median(ceil['ratios']):.2f}x** the ceiling (rounds: "
                  + ", ".join(f"{r:.2f}x" for r in ceil["ratios"]) + ")."]
    direct = results.get("direct_db")
    if direct:
        lines += ["", f"Direct database (`postgresql://`, no HTTP server): the floor from "
                  f"{direct['threads']} threads {direct['floor_per_s']:.2f}/s, ours with "
                  f"traces {direct['ours_traces_per_s']:.2f}/s ({direct['ratio']:.2f}x)."]
    scale = results.get("scale_out")
    if scale:
        base = scale[0]
        lines += ["", "Scale-out: `mlflow server` instances (2 workers each) over one "
                  "PostgreSQL and one S3 bucket (moto), writers round-robin, 8 per instance:",
                  "", "| instances | floor, workflows/s | vs 1 instance | ours with traces, "
                  "workflows/s | vs 1 instance |", "|---:|---:|---:|---:|---:|"]
        for row in scale:
            lines.append(
                f"| {row['instances']} | {row['floor_per_s']:.2f} | "
                f"{row['floor_per_s'] / base['floor_per_s']:.2f}x | "
                f"{row['ours_traces_per_s']:.2f} | "
                f"{row['ours_traces_per_s'] / base['ours_traces_per_s']:.2f}x |")
    return lines
