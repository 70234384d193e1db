"""A local, multi-process-safe spool of finished workflows that could not reach MLflow yet.

Each spooled workflow is one JSON file holding its assembled RunPlan tree, so a
replay needs no pricing or serialization and writes exactly what would have been
written. Files are written to a temp name and renamed (atomic), claimed for
replay by renaming them to a name carrying the claimer's pid (atomic: only one
process wins), and deleted after the write. Claims and temp files left by dead
processes are released / removed on the next start, drain or ``sync``. One
directory per tracking URI (a hash: the URI itself, which may carry credentials,
is never written to disk).

Spool files hold prompts and maybe secrets, and anyone who can write the folder
can forge one: the folder is 0700 and files 0600 whatever the umask; a replay
refuses a folder that is not ours or is group/world-writable; only regular files
are read, without following links, size-capped, and validated
(:mod:`.spool_schema`) before anything is written. A file that fails is moved to
``rejected/`` beside a ``.reason.txt`` and counted; the others keep flowing.
The spool is capped (``spool_max_bytes``): past it *new* workflows are dropped
and counted (what is already on disk was promised first and stays).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configurable_agents.observability.sinks.run_plan import RunPlan
from configurable_agents.observability.sinks.spool_schema import (
    SPOOL_VERSION,
    SpoolFormatError,
    parse_spool_file,
)

__all__ = [
    "SPOOL_VERSION", "BadSpoolFile", "Spool", "SpoolFullError", "SpoolUnsafeError",
    "SpooledWorkflow", "default_spool_root", "plan_to_dict", "spool_dir_for",
]

_SUFFIX = ".json"
_CLAIM = ".claimed-"
_TMP = ".tmp"
REJECTED_DIR = "rejected"
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB
MAX_FILE_BYTES = 64 << 20  # one spooled workflow (artifacts are capped well below this)
WARN_FILL_RATIO = 0.8
_NAME_UNSAFE = re.compile(r"[^\w\-]")


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


@dataclass(slots=True)
class BadSpoolFile:
    """A claimed entry that is not a valid spooled workflow; already moved to ``rejected/``."""

    name: str
    reason: str


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


class SpoolUnsafeError(RuntimeError):
    """The spool folder is not ours or others can write it: nothing in it is replayed."""


class SpoolFullError(OSError):
    """The spool reached ``max_bytes``; the new workflow is dropped (counted)."""


class Spool:
    """The spool directory of one tracking URI."""

    def __init__(
        self,
        directory: str | Path,
        stale_claim_s: float = 600.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.stale_claim_s = stale_claim_s
        self.max_bytes = max_bytes
        self.max_file_bytes = max_file_bytes
        self._size: int | None = None  # bytes on disk, counted once, then tracked
        # Several MLflow workers spool at once: the cap check and the reservation are one
        # step, or two writers could each see room for one file and both write.
        self._size_lock = threading.Lock()

    # ---- write ------------------------------------------------------------------------------

    def put(
        self,
        experiment: str,
        langchain_run_id: str,
        mlflow_run_id: str | None,
        plan: RunPlan,
        trace: dict[str, Any] | None = None,
    ) -> Path:
        """Write one finished workflow atomically (0600); returns its file.

        Raises :class:`SpoolFullError` past ``max_bytes`` and OSError (disk full...);
        either way no temp file is left behind.
        """
        self._ensure_dir()
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
        data = json.dumps(payload, ensure_ascii=True).encode("ascii")
        with self._size_lock:
            used = self.size_bytes()
            if used + len(data) > self.max_bytes:
                raise SpoolFullError(f"spool is full ({used} of {self.max_bytes} bytes)")
            self._size = used + len(data)  # reserved before writing
        safe_id = _NAME_UNSAFE.sub("_", str(langchain_run_id))[:64]
        name = f"{max(0, plan.start_ms):015d}-{safe_id}-{uuid.uuid4().hex[:8]}"
        tmp = self.directory / f".{name}.{os.getpid()}{_TMP}"
        final = self.directory / f"{name}{_SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            with self._size_lock:
                self._size = max(0, (self._size or 0) - len(data))
            raise
        return final

    def fill_ratio(self) -> float:
        return self.size_bytes() / self.max_bytes if self.max_bytes else 1.0

    def size_bytes(self) -> int:
        if self._size is None:
            self._size = sum(_regular_size(p) for p in self._entries())
        return self._size

    # ---- read -------------------------------------------------------------------------------

    def pending(self) -> list[Path]:
        """Unclaimed spooled workflows (regular files only, links never), oldest first."""
        return sorted(
            p for p in self._entries()
            if p.name.endswith(_SUFFIX) and not p.name.startswith(".") and _is_regular(p)
        )

    def hostile(self) -> list[Path]:
        """Entries named like spool files that are not regular files (links, FIFOs...)."""
        return sorted(
            p for p in self._entries()
            if p.name.endswith(_SUFFIX) and not p.name.startswith(".") and not _is_regular(p)
        )

    def __len__(self) -> int:
        return len(self.pending())

    def check_safe(self) -> None:
        """Refuse to replay from a folder another user owns or can write (forged files)."""
        try:
            info = os.lstat(self.directory)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            raise SpoolUnsafeError(f"spool {self.directory} is not a plain directory; not replayed")
        if info.st_uid != os.geteuid():
            raise SpoolUnsafeError(
                f"spool {self.directory} belongs to uid {info.st_uid}, not to you "
                f"(uid {os.geteuid()}); not replayed"
            )
        if info.st_mode & 0o022:
            raise SpoolUnsafeError(
                f"spool {self.directory} is group/world-writable "
                f"(mode {stat.S_IMODE(info.st_mode):o}); run `chmod 700` on it; not replayed"
            )

    def claim(self) -> Iterator[SpooledWorkflow | BadSpoolFile]:
        """Yield what this process claimed; call :meth:`done`, :meth:`release` or
        :meth:`reject` on each workflow. Bad files come back as :class:`BadSpoolFile`,
        already set aside. Raises :class:`SpoolUnsafeError` before claiming anything."""
        self.check_safe()
        self.recover()
        for path in self.pending():
            claimed = path.with_name(f"{path.name}{_CLAIM}{os.getpid()}-{int(time.time())}")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue  # another process claimed it first
            try:
                doc = parse_spool_file(self._read(claimed))
            except (SpoolFormatError, OSError) as exc:
                reason = str(exc) if isinstance(exc, SpoolFormatError) else _os_reason(exc)
                self._set_aside(claimed, path.name, reason)
                yield BadSpoolFile(name=path.name, reason=reason)
                continue
            yield SpooledWorkflow(
                path=claimed,
                experiment=doc.experiment,
                langchain_run_id=doc.langchain_run_id,
                mlflow_run_id=doc.mlflow_run_id,
                plan=doc.plan.to_plan(),
                trace=doc.trace,
            )

    def _read(self, path: Path) -> bytes:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise SpoolFormatError("not a regular file")
            if info.st_uid != os.geteuid():
                raise SpoolFormatError(f"owned by uid {info.st_uid}, not by you")
            if info.st_size > self.max_file_bytes:
                raise SpoolFormatError(
                    f"{info.st_size} bytes, over the {self.max_file_bytes}-byte cap per file"
                )
            chunks, left = [], self.max_file_bytes + 1
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            if left <= 0:
                raise SpoolFormatError(f"over the {self.max_file_bytes}-byte cap per file")
            return b"".join(chunks)
        finally:
            os.close(fd)

    # ---- outcome of a claim -----------------------------------------------------------------

    def done(self, item: SpooledWorkflow) -> None:
        size = _regular_size(item.path)
        item.path.unlink(missing_ok=True)
        if self._size is not None:
            self._size = max(0, self._size - size)

    def release(self, item: SpooledWorkflow) -> None:
        """Give a claimed workflow back (its write failed); keeps its original name."""
        original = item.path.name.split(_CLAIM, 1)[0]
        with contextlib.suppress(FileNotFoundError):
            os.replace(item.path, item.path.with_name(original))

    def reject(self, item: SpooledWorkflow, reason: str) -> None:
        """MLflow refused this workflow even cleaned: keep it aside (not retried) with why."""
        self._set_aside(item.path, item.path.name.split(_CLAIM, 1)[0], reason)

    def put_rejected(self, experiment: str, langchain_run_id: str, plan: RunPlan,
                     reason: str) -> Path:
        """Keep a workflow MLflow refused in ``rejected/`` (with why), never replayed."""
        path = self.put(experiment, langchain_run_id, None, plan)
        self._set_aside(path, path.name, reason)
        return self.directory / REJECTED_DIR / path.name

    def rejected(self) -> list[Path]:
        folder = self.directory / REJECTED_DIR
        return sorted(p for p in folder.glob(f"*{_SUFFIX}*") if not p.name.endswith(".txt")) \
            if folder.is_dir() else []

    def _set_aside(self, path: Path, original: str, reason: str) -> None:
        folder = self.directory / REJECTED_DIR
        size = _regular_size(path)
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
            target = folder / original
            os.replace(path, target)
            fd = os.open(folder / f"{original}.reason.txt",
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(reason + "\n")
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)  # could not keep it aside: never retry it forever
        if self._size is not None:
            self._size = max(0, self._size - size)

    # ---- housekeeping -----------------------------------------------------------------------

    def recover(self) -> None:
        """Release claims and remove temp files left by dead processes (or very old ones)."""
        now = time.time()
        for path in self._entries():
            name = path.name
            if name.startswith(".") and name.endswith(_TMP):
                pid_text = name[: -len(_TMP)].rsplit(".", 1)[-1]
                if not (pid_text.isdigit() and _pid_alive(int(pid_text))):
                    with contextlib.suppress(OSError):
                        path.unlink()
                        self._size = None
                continue
            if _CLAIM not in name:
                continue
            owner = name.split(_CLAIM, 1)[1]
            pid_text, _, stamp = owner.partition("-")
            alive = _pid_alive(int(pid_text)) if pid_text.isdigit() else False
            too_old = stamp.isdigit() and now - int(stamp) > self.stale_claim_s
            if not alive or too_old:
                original = name.split(_CLAIM, 1)[0]
                with contextlib.suppress(OSError):
                    os.replace(path, path.with_name(original))

    def _ensure_dir(self) -> None:
        if not self.directory.is_dir():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.recover()
        with contextlib.suppress(OSError):
            if stat.S_IMODE(os.stat(self.directory).st_mode) != 0o700:
                os.chmod(self.directory, 0o700)  # umask-independent

    def _entries(self) -> list[Path]:
        try:
            with os.scandir(self.directory) as it:
                return [Path(e.path) for e in it]
        except (FileNotFoundError, NotADirectoryError):
            return []


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _regular_size(path: Path) -> int:
    try:
        info = os.lstat(path)
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def _os_reason(exc: OSError) -> str:
    return f"unreadable ({exc.strerror or type(exc).__name__})"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
