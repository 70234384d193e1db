"""Caller overhead and persist throughput of two commits, measured in one run.

``python -m benchmarks.compare_commits --base REV`` checks REV out into a temporary
git worktree and alternates short ``benchmarks.run`` passes between it and the
working tree (same harness, same machine, same minutes), each in a fresh
interpreter with that tree's ``src`` first on ``sys.path``. On a shared 2-core
machine absolute times drift by tens of percent between minutes; alternating
base and head and taking medians over rounds is what makes the two comparable.
The harness only uses the public API (``MLFlowConfig``, ``MLflowCallbackHandler``),
so it runs unchanged against older commits.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _pass(src: Path, out: Path, seconds: float) -> dict[str, Any]:
    """One short benchmark pass of the tree whose sources are ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [
        sys.executable, "-m", "benchmarks.run", "--only", "latency", "--only", "throughput",
        "--workloads", "article_writer", "--modes", "none,noop,ours_async",
        "--latency-seconds", str(seconds), "--throughput-seconds", str(seconds),
        "--throughput-variants", "ours_async", "--json", str(out), "--no-doc",
    ]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=1800)
    data = json.loads(out.read_text(encoding="utf-8"))
    latency = data["latency"][0]["modes"]
    return {
        "overhead_ms": latency["ours_async"]["overhead_ms"],
        "noop_overhead_ms": latency["noop"]["overhead_ms"],
        "throughput_ratio": data["throughput"]["ratio_to_baseline"]["ours_async"],
        "workflows_per_s": data["throughput"]["workflows_per_s"]["ours_async"]["median"],
    }


def compare(base: str, rounds: int, seconds: float, seed: int = 8) -> dict[str, Any]:
    rng = random.Random(seed)
    samples: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
    with tempfile.TemporaryDirectory(prefix="ca-bench-base-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), base], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            trees = {"base": tree / "src", "head": ROOT / "src"}
            for i in range(rounds):
                order = ["base", "head"]
                rng.shuffle(order)
                for label in order:
                    out = Path(tmp) / f"{label}-{i}.json"
                    samples[label].append(_pass(trees[label], out, seconds))
                    print(f"round {i + 1}/{rounds} {label}: {samples[label][-1]}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                           check=False, capture_output=True)
    summary = {
        label: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for label, runs in samples.items()
    }
    return {"base": base, "rounds": rounds, "seconds": seconds, "median": summary,
            "samples": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="budget per section")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" /
                        "compare_commits.json")
    args = parser.parse_args(argv)
    result = compare(args.base, args.rounds, args.seconds)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["median"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
