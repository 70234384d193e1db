"""A local, multi-process-safe spool of finished workflows that could not reach MLflow yet.

Each spooled workflow is one JSON file holding its assembled RunPlan tree, so a
replay needs no pricing or serialization and writes exactly what would have been
written. Files are written to a temp name and renamed (atomic), claimed for
replay by renaming them to a name carrying the claimer's pid (atomic: only one
process wins), and deleted after the write. Claims left by dead processes are
released after ``stale_claim_s``. One directory per tracking URI (a hash: the
URI itself, which may carry credentials, is never written to disk).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configurable_agents.observability.facts.assemble import RunPlan

SPOOL_VERSION = 1
_SUFFIX = ".json"
_CLAIM = ".claimed-"


def default_spool_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "configurable-agents" / "spool"


def spool_dir_for(tracking_uri: str, root: str | Path | None = None) -> Path:
    digest = hashlib.sha256(tracking_uri.encode("utf-8")).hexdigest()[:16]
    return Path(root) if root else default_spool_root() / digest


@dataclass(slots=True)
class SpooledWorkflow:
    path: Path
    experiment: str
    langchain_run_id: str
    mlflow_run_id: str | None
    plan: RunPlan
    trace: dict[str, Any] | None = None  # the finished trace (Trace.to_dict()), if logged


def plan_to_dict(plan: RunPlan) -> dict[str, Any]:
    return {
        "run_name": plan.run_name,
        "start_ms": plan.start_ms,
        "end_ms": plan.end_ms,
        "status": plan.status,
        "params": plan.params,
        "metrics": plan.metrics,
        "tags": plan.tags,
        "artifacts": plan.artifacts,
        "children": [plan_to_dict(c) for c in plan.children],
    }


def plan_from_dict(data: dict[str, Any]) -> RunPlan:
    return RunPlan(
        run_name=data["run_name"],
        start_ms=int(data["start_ms"]),
        end_ms=int(data["end_ms"]),
        status=data["status"],
        params=dict(data.get("params", {})),
        metrics={k: float(v) for k, v in data.get("metrics", {}).items()},
        tags=dict(data.get("tags", {})),
        artifacts=dict(data.get("artifacts", {})),
        children=[plan_from_dict(c) for c in data.get("children", [])],
    )


class Spool:
    """The spool directory of one tracking URI."""

    def __init__(self, directory: str | Path, stale_claim_s: float = 600.0) -> None:
        self.directory = Path(directory)
        self.stale_claim_s = stale_claim_s

    def put(
        self,
        experiment: str,
        langchain_run_id: str,
        mlflow_run_id: str | None,
        plan: RunPlan,
        trace: dict[str, Any] | None = None,
    ) -> Path:
        """Write one finished workflow atomically; returns its file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "version": SPOOL_VERSION,
            "experiment": experiment,
            "langchain_run_id": langchain_run_id,
            "mlflow_run_id": mlflow_run_id,
            "spooled_at_ms": int(time.time() * 1000),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "plan": plan_to_dict(plan),
            "trace": trace,
        }
        name = f"{plan.start_ms:015d}-{langchain_run_id}-{uuid.uuid4().hex[:8]}"
        tmp = self.directory / f".{name}.tmp"
        final = self.directory / f"{name}{_SUFFIX}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final

    def pending(self) -> list[Path]:
        """Unclaimed spooled workflows, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.name.endswith(_SUFFIX)
                      and not p.name.startswith("."))

    def __len__(self) -> int:
        return len(self.pending())

    def claim(self) -> Iterator[SpooledWorkflow]:
        """Yield workflows this process claimed; call :meth:`done` or :meth:`release` on each."""
        self._release_stale_claims()
        for path in self.pending():
            claimed = path.with_name(f"{path.name}{_CLAIM}{os.getpid()}-{int(time.time())}")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue  # another process claimed it first
            try:
                data = json.loads(claimed.read_text(encoding="utf-8"))
                yield SpooledWorkflow(
                    path=claimed,
                    experiment=data["experiment"],
                    langchain_run_id=data["langchain_run_id"],
                    mlflow_run_id=data.get("mlflow_run_id"),
                    plan=plan_from_dict(data["plan"]),
                    trace=data.get("trace"),
                )
            except (OSError, ValueError, KeyError) as exc:
                bad = claimed.with_name(f"{path.name}.corrupt")
                os.replace(claimed, bad)
                raise SpoolCorruptError(f"unreadable spool file moved to {bad}: {exc}") from exc

    def done(self, item: SpooledWorkflow) -> None:
        item.path.unlink(missing_ok=True)

    def release(self, item: SpooledWorkflow) -> None:
        """Give a claimed workflow back (its write failed); keeps its original name."""
        original = item.path.name.split(_CLAIM, 1)[0]
        with contextlib.suppress(FileNotFoundError):
            os.replace(item.path, item.path.with_name(original))

    def _release_stale_claims(self) -> None:
        if not self.directory.is_dir():
            return
        now = time.time()
        for path in self.directory.iterdir():
            if _CLAIM not in path.name:
                continue
            owner = path.name.split(_CLAIM, 1)[1]
            pid_text, _, stamp = owner.partition("-")
            alive = _pid_alive(int(pid_text)) if pid_text.isdigit() else False
            too_old = stamp.isdigit() and now - int(stamp) > self.stale_claim_s
            if not alive or too_old:
                original = path.name.split(_CLAIM, 1)[0]
                with contextlib.suppress(FileNotFoundError):
                    os.replace(path, path.with_name(original))


class SpoolCorruptError(RuntimeError):
    pass


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
