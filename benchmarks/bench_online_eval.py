"""Online evaluation's cost on the caller's thread: the same app, online_eval off vs on.

Run with ``python -m benchmarks.bench_online_eval`` (``make bench`` runs it as its
``online_eval`` section). Both modes write to MLflow (sqlite); "on" adds the online-evaluation
sink at ``sample_rate: 1.0`` with a regex scorer and an LLM judge (the offline demo model, so
the judge's own runs are written too). What is timed is ``app.invoke`` as the caller sees it;
the scoring runs on the sink's worker. Blocks of invocations alternate between the modes
(ABAB...) and each block is flushed untimed, so both modes face the same backlog; the
figure is the ratio of the per-invocation medians, on / off, in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from configurable_agents.config.schema import ObservabilityConfig
from configurable_agents.observability import MLflowCallbackHandler


def _config(store: str, experiment: str, online: bool) -> ObservabilityConfig:
    block: dict[str, Any] = {
        "mlflow": {"enabled": True, "tracking_uri": store, "experiment_name": experiment},
    }
    if online:
        block["online_eval"] = {
            "enabled": True, "sample_rate": 1.0, "scorers": ["regex:[A-Za-z]", "llm_judge"],
            "judge": {"provider": "demo", "model": "gpt-4o-mini"},
        }
    return ObservabilityConfig.model_validate(block)


def run(store: str, *, blocks: int = 6, block_size: int = 20,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    from benchmarks.workloads import article_writer

    workload = article_writer()
    handlers = {
        mode: MLflowCallbackHandler(_config(store, f"bench-online-{mode}-{time.time_ns()}",
                                            mode == "on"), workflow_name="article_writer")
        for mode in ("off", "on")
    }
    samples: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for handler in handlers.values():  # warm-up: imports, experiment, judge model
            workload.invoke([handler])
            handler.flush(timeout=60)
        for block in range(blocks):
            order = ("off", "on") if block % 2 == 0 else ("on", "off")
            for mode in order:
                handler = handlers[mode]
                for _ in range(block_size):
                    started = time.perf_counter()
                    workload.invoke([handler])
                    samples[mode].append((time.perf_counter() - started) * 1000)
                handler.flush(timeout=120)
            say(f"online_eval: block {block + 1}/{blocks}")
        online = handlers["on"].stats().sinks["online_eval"]
    finally:
        for handler in handlers.values():
            handler.close(timeout=60)
    off_ms, on_ms = statistics.median(samples["off"]), statistics.median(samples["on"])
    return {
        "workload": workload.name,
        "invocations_per_mode": len(samples["off"]),
        "caller_ms_median": {"off": off_ms, "on": on_ms},
        "caller_ms_p95": {m: sorted(v)[int(0.95 * (len(v) - 1))] for m, v in samples.items()},
        "overhead_ratio": on_ms / off_ms,
        "scored_workflows": online.exported,
        "scoring_failures": online.failed,
    }


def main(argv: list[str] | None = None) -> int:
    from benchmarks import measure

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--block-size", type=int, default=20)
    args = parser.parse_args(argv)
    store, _ = measure.new_store()
    print(json.dumps(run(store, blocks=args.blocks, block_size=args.block_size), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
