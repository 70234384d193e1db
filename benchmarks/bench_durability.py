"""Caller cost of ``durability: disk`` against ``memory``, measured in the same run.

What the app pays per invocation: with ``disk`` the root-end callback waits until the
pipeline thread has built the workflow's facts and fsynced its journal file (the MLflow
spool, claimed); with ``memory`` it only queues the record. Same graph (the tests'
two-node article writer on fake chat models), same sqlite store, rounds interleaved
(memory, disk, memory, ...) so machine load hits both alike. The result is a ratio of
medians (and of p95s), disk / memory.

Run: ``.venv/bin/python -m benchmarks.bench_durability`` (``make bench`` runs it);
``--quick`` for a smoke run. The numbers go to docs/BENCHMARKS.md between the
``durability`` markers and to ``benchmarks/results/durability.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
JSON_OUT = ROOT / "benchmarks" / "results" / "durability.json"
BEGIN, END = "<!-- durability:begin -->", "<!-- durability:end -->"


def _handler(store: str, spool: Path, durability: str) -> Any:
    from configurable_agents.config import MLFlowConfig
    from configurable_agents.observability import MLflowCallbackHandler

    return MLflowCallbackHandler(MLFlowConfig(
        enabled=True, tracking_uri=store, experiment_name=f"bench-{uuid.uuid4().hex[:6]}",
        spool_dir=str(spool / durability), durability=durability, log_traces=False))


def _invoke_ms(handler: Any, app: Any, n: int) -> float:
    started = time.perf_counter()
    app.invoke({"topic": f"t{n}"}, config={"callbacks": [handler]})
    return (time.perf_counter() - started) * 1000


def run(rounds: int, per_round: int) -> dict[str, Any]:
    from tests.fakes import repeating
    from tests.test_handler_shapes import article_writer

    with tempfile.TemporaryDirectory(prefix="ca-bench-durability-") as tmp:
        root = Path(tmp)
        store = f"sqlite:///{root / 'mlflow.db'}"
        handlers = {mode: _handler(store, root / "spool", mode) for mode in ("memory", "disk")}
        app = article_writer(repeating("text", 100, 20))
        samples: dict[str, list[float]] = {"memory": [], "disk": []}
        for handler in handlers.values():  # warm-up: imports, experiment, threads
            for n in range(3):
                _invoke_ms(handler, app, n)
            handler.flush(120)
        n = 0
        for _ in range(rounds):
            for mode, handler in handlers.items():
                for _ in range(per_round):
                    samples[mode].append(_invoke_ms(handler, app, n))
                    n += 1
                handler.flush(120)  # exports outside the timed calls
        for handler in handlers.values():
            handler.close(60)

    def p95(values: list[float]) -> float:
        return sorted(values)[max(0, int(len(values) * 0.95) - 1)]

    out: dict[str, Any] = {"invocations_per_mode": rounds * per_round}
    for mode, values in samples.items():
        out[mode] = {"median_ms": statistics.median(values), "p95_ms": p95(values)}
    out["ratio_median"] = out["disk"]["median_ms"] / out["memory"]["median_ms"]
    out["ratio_p95"] = out["disk"]["p95_ms"] / out["memory"]["p95_ms"]
    return out


def render(result: dict[str, Any]) -> str:
    mem, disk = result["memory"], result["disk"]
    return "\n".join([
        BEGIN,
        f"Caller cost of `durability: disk` (`benchmarks/bench_durability.py`, "
        f"{result['invocations_per_mode']} invocations per mode, interleaved rounds, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}):",
        "",
        "| durability | median per invoke (ms) | p95 (ms) |",
        "| --- | ---: | ---: |",
        f"| memory | {mem['median_ms']:.2f} | {mem['p95_ms']:.2f} |",
        f"| disk | {disk['median_ms']:.2f} | {disk['p95_ms']:.2f} |",
        f"| **disk / memory** | **{result['ratio_median']:.2f}x** | "
        f"**{result['ratio_p95']:.2f}x** |",
        END,
    ])


def write_doc(path: Path, block: str) -> None:
    text = path.read_text(encoding="utf-8")
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Durability: caller cost of `disk`\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    result = run(rounds=2, per_round=5) if args.quick else run(rounds=6, per_round=25)
    JSON_OUT.parent.mkdir(parents=True, exist_ok=True)
    JSON_OUT.write_text(json.dumps(result, indent=2), encoding="utf-8")
    block = render(result)
    print(block)
    if not args.no_doc:
        write_doc(DOC, block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
