"""Entry point: ``python -m benchmarks.run`` (``make bench``).

Runs every section, writes the JSON results and the generated block of
docs/BENCHMARKS.md. ``--quick`` shrinks every count (a smoke run in seconds, numbers
meaningless); the default sizes keep the full run under ten minutes on 2 busy cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"
DEFAULT_DOC = ROOT / "docs" / "BENCHMARKS.md"
CORE_SECTIONS = ("latency", "throughput", "scaling", "memory")  # on a sqlite store
# "production": parallel writers, sampling, catch-up on a real team server (bench_production).
# "online_eval": the caller's cost of online evaluation, off vs on (bench_online_eval).
SECTIONS = (*CORE_SECTIONS, "production", "online_eval")


@dataclass(slots=True)
class Plan:
    """Every count and time budget of one run (seconds budgets apply after the minimums)."""

    workloads: tuple[str, ...] | None  # None: all five
    modes: tuple[str, ...] | None  # None: all
    latency_seconds: dict[str, float]  # per workload; "*" for the rest
    latency_min_rounds: int
    latency_max_rounds: int
    latency_warmup: int
    throughput_block: int
    throughput_seconds: float
    throughput_min_blocks: int
    throughput_variants: tuple[str, ...]
    scaling_sizes: tuple[int, ...]
    scaling_rounds: dict[int, tuple[int, int, float]]  # size -> (min, max, seconds)
    memory_invocations: int
    memory_persisted_seconds: float

    @classmethod
    def full(cls) -> Plan:
        return cls(
            workloads=None,
            modes=None,
            latency_seconds={"article_writer": 60, "*": 35},
            latency_min_rounds=3,
            latency_max_rounds=400,
            latency_warmup=1,
            throughput_block=8,
            throughput_seconds=50,
            throughput_min_blocks=2,
            throughput_variants=("ours_async", "ours_async_no_traces", "ours_sync"),
            scaling_sizes=(10, 100, 1000),
            scaling_rounds={10: (10, 300, 15), 100: (5, 100, 15), 1000: (3, 20, 30)},
            memory_invocations=10_000,
            memory_persisted_seconds=30,
        )

    @classmethod
    def quick(cls) -> Plan:
        """Seconds, not minutes: proves the harness works; the numbers mean nothing."""
        return cls(
            workloads=("article_writer",),
            modes=("none", "noop", "ours_async"),
            latency_seconds={"*": 0},
            latency_min_rounds=1,
            latency_max_rounds=1,
            latency_warmup=0,
            throughput_block=1,
            throughput_seconds=0,
            throughput_min_blocks=1,
            throughput_variants=("ours_async",),
            scaling_sizes=(2, 4),
            scaling_rounds={2: (1, 1, 0), 4: (1, 1, 0)},
            memory_invocations=4,
            memory_persisted_seconds=0,
        )


def _quiet_libraries() -> None:
    """MLflow and langchain-community log and warn a lot; none of it is a result."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("MLFLOW_TRACKING_TELEMETRY", "false")
    warnings.filterwarnings("ignore")
    import mlflow  # noqa: F401  (configures its loggers on import: quiet them after)

    # langchain_core.callbacks.manager: langchain-community's handler fails on every LangGraph
    # chain start (it flattens ``serialized``, which LangGraph passes as None); LangChain
    # logs each failure. The failure is part of what that handler costs, not news.
    for name in ("mlflow", "alembic", "langchain_community", "httpx",
                 "langchain_core.callbacks.manager"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def run(
    plan: Plan,
    sections: tuple[str, ...] = CORE_SECTIONS,
    seed: int = 8,
    store: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the chosen sections and return the results (with targets evaluated).

    ``store`` is a tracking URI of an existing sqlite store; by default a fresh one is made
    in a temporary directory.
    """
    _quiet_libraries()
    import mlflow

    from benchmarks import machine, measure, report

    def say(message: str) -> None:
        if progress:
            print(f"[bench {time.perf_counter() - started:6.1f}s] {message}", flush=True)

    started = time.perf_counter()
    rng = random.Random(seed)
    results: dict[str, Any] = {"machine": machine.describe(), "plan": asdict(plan)}
    results["plan"]["scaling_rounds"] = {str(k): v for k, v in plan.scaling_rounds.items()}
    if store is None:
        store, directory = measure.new_store()
        say(f"store ready at {directory}")
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store)  # fluent modes (autolog, ADR sketch) write here too
    try:
        _run_sections(plan, sections, store, rng, results, say)
    finally:
        mlflow.set_tracking_uri(previous_uri)
    results["seconds"] = time.perf_counter() - started
    results["targets"] = report.evaluate(results)
    say("done")
    return _clean(results)


def _run_sections(
    plan: Plan,
    sections: tuple[str, ...],
    store: str,
    rng: random.Random,
    results: dict[str, Any],
    say: Any,
) -> None:
    from benchmarks import measure
    from benchmarks.modes import all_modes
    from benchmarks.workloads import standard_workloads

    tag = measure.run_tag()
    results["store"] = "sqlite (file in a temporary directory)"
    ours_log = logging.getLogger("configurable_agents.observability")

    if "latency" in sections:
        results["latency"] = []
        for workload in standard_workloads():
            if plan.workloads is not None and workload.name not in plan.workloads:
                continue
            seconds = plan.latency_seconds.get(workload.name, plan.latency_seconds["*"])
            budget = measure.Budget(seconds, plan.latency_min_rounds, plan.latency_max_rounds)
            modes = [m for m in all_modes() if plan.modes is None or m.name in plan.modes]
            say(f"latency: {workload.name} ({len(modes)} modes, {seconds:.0f} s budget)")
            results["latency"].append(
                measure.latency(workload, modes, store, tag, budget, rng, plan.latency_warmup)
            )
    if "throughput" in sections:
        say("throughput vs hand-written MlflowClient sequence")
        results["throughput"] = measure.throughput(
            store,
            tag,
            plan.throughput_block,
            measure.Budget(plan.throughput_seconds, plan.throughput_min_blocks, 1000),
            rng,
            plan.throughput_variants,
        )
    if "scaling" in sections:
        say(f"scaling: {plan.scaling_sizes} nodes")
        budgets = {
            size: measure.Budget(seconds, low, high)
            for size, (low, high, seconds) in plan.scaling_rounds.items()
        }
        level = ours_log.level
        ours_log.setLevel(logging.ERROR)  # the expected "fail closed: not logging" notice
        try:
            results["scaling"] = measure.scaling(store, tag, plan.scaling_sizes, budgets, rng)
        finally:
            ours_log.setLevel(level)
    if "memory" in sections:
        say(f"memory: {plan.memory_invocations:,} invocations")
        results["memory"] = measure.memory(
            store, tag, plan.memory_invocations, plan.memory_persisted_seconds
        )
    if "online_eval" in sections:
        from benchmarks import bench_online_eval

        say("online_eval: caller time with online evaluation off vs on (sample_rate 1.0)")
        quick = plan.throughput_seconds < 10
        results["online_eval"] = bench_online_eval.run(
            store, blocks=2 if quick else 6, block_size=2 if quick else 20, say=say)
    if "production" in sections:  # its own team server (PostgreSQL); its own doc block
        from benchmarks import bench_production

        say("production: parallel writers, sampling, catch-up (mlflow server on PostgreSQL)")
        sizes = bench_production.Sizes.quick() if plan.throughput_seconds < 10 else (
            bench_production.Sizes())
        results["production"] = asdict(bench_production.run(sizes, bench_production.SECTIONS,
                                                            say))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (smoke run)")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run some sections")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results file")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="markdown to update")
    parser.add_argument("--no-doc", action="store_true", help="do not touch the markdown")
    parser.add_argument("--memory-invocations", type=int, help="override the memory count")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--workloads", help="comma-separated workload names (default: all)")
    parser.add_argument("--modes", help="comma-separated mode names (default: all)")
    parser.add_argument("--latency-seconds", type=float, help="latency budget per workload")
    parser.add_argument("--throughput-seconds", type=float, help="throughput time budget")
    parser.add_argument("--throughput-variants", help="comma-separated writers to measure")
    args = parser.parse_args(argv)

    from benchmarks import report

    plan = Plan.quick() if args.quick else Plan.full()
    if args.memory_invocations is not None:
        plan.memory_invocations = args.memory_invocations
    if args.workloads:
        plan.workloads = tuple(args.workloads.split(","))
    if args.modes:
        plan.modes = tuple(args.modes.split(","))
    if args.latency_seconds is not None:
        plan.latency_seconds = {"*": args.latency_seconds}
    if args.throughput_seconds is not None:
        plan.throughput_seconds = args.throughput_seconds
    if args.throughput_variants:
        plan.throughput_variants = tuple(args.throughput_variants.split(","))
    sections = tuple(args.only) if args.only else SECTIONS
    results = run(plan, sections, seed=args.seed)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    generated = report.render(results)
    if not args.no_doc:
        report.write_doc(args.doc, generated)
        if "production" in results:
            from benchmarks import bench_production

            block = bench_production.render(bench_production.Results(**results["production"]))
            bench_production.write_doc(args.doc, block)
    print(generated)
    print(f"\nresults: {args.json}" + ("" if args.no_doc else f"; table: {args.doc}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
