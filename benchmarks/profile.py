"""Where the time goes: ``python -m benchmarks.profile caller|exporter [--calls N]``.

- ``caller``: the caller thread of ``--calls`` invocations of a ``--nodes``-node chain
  through an async handler whose exporter discards (no I/O competing): the handler's own
  callback cost, by function (cProfile, cumulative, handler and queue frames only).
- ``exporter``: the same writes the exporter thread does, run in sync mode so a profiler
  on the calling thread sees them: MLflow calls per workflow, runs versus the trace.

cProfile ships with Python; pyinstrument or py-spy give nicer views of the same runs
(``pip install 'configurable-agents[bench]'`` for pyinstrument).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import sys

from benchmarks.measure import new_store
from benchmarks.modes import OursMode
from benchmarks.run import _quiet_libraries
from benchmarks.workloads import article_writer, sequential_chain

CALLER_FILTER = r"observability|queue\.py|threading\.py"
EXPORTER_FILTER = (
    r"mlflow_writer|traces\.py:\d+\((export_trace|write|build_trace)\)|"
    r"client\.py:\d+\((create_run|log_batch|set_terminated|log_artifacts|start_trace|log_spans)\)"
)


def profile_caller(calls: int, nodes: int) -> str:
    store, _ = new_store()
    workload = sequential_chain(nodes) if nodes != 2 else article_writer()
    handler = OursMode(experiment_template=True, tenant_fail_closed=True).make_handler(
        store, "profile-caller", workload.name
    )
    logging.getLogger("configurable_agents.observability").setLevel(logging.ERROR)
    for _ in range(3):
        workload.invoke([handler])
    handler.flush(60)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        workload.invoke([handler])
    profiler.disable()
    handler.close(60)
    return _render(profiler, CALLER_FILTER, 30)


def profile_exporter(calls: int) -> str:
    store, _ = new_store()
    workload = article_writer()
    handler = OursMode(async_logging=False).make_handler(store, "profile-exporter", "w")
    for _ in range(3):
        workload.invoke([handler])
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        workload.invoke([handler])
    profiler.disable()
    handler.close(60)
    return _render(profiler, EXPORTER_FILTER, 30)


def _render(profiler: cProfile.Profile, pattern: str, limit: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(pattern, limit)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("caller", "exporter"))
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--nodes", type=int, default=2, help="caller: 2 = article writer")
    args = parser.parse_args(argv)
    _quiet_libraries()
    if args.what == "caller":
        print(profile_caller(args.calls, args.nodes))
    else:
        print(profile_exporter(args.calls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
