"""Who owns a spooled workflow: claim names that say which live process holds them.

A spool file is claimed by renaming it to ``<name>.claimed-<owner>-<unix time>`` (atomic:
one process wins). The owner token is ``<machine>.<pid>.<process start>``:

- ``machine`` hashes the host name and the kernel's boot id, so a claim made before
  a reboot (or in another container with its own pid space but the same shared
  folder) is never mistaken for a live one of ours just because a pid matches;
- ``process start`` (clock ticks since boot, from ``/proc/<pid>/stat``) tells a live
  owner from a new process that reuses its pid.

On our machine a claim is taken over only when its owner is dead: a live owner is
never second-guessed, however long it takes, so two writers never hold one workflow.
A claim from another machine (a spool on a shared filesystem) cannot be checked and is
taken over once it is ``stale_claim_s`` old. Claims without the token (older versions)
are judged by their pid alone.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import time

CLAIM_MARK = ".claimed-"


@functools.cache
def machine_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
    except OSError:
        boot = ""
    return hashlib.sha256(f"{socket.gethostname()}|{boot}".encode()).hexdigest()[:10]


def _start_ticks(pid: int) -> str:
    """The process's start time in ticks since boot ('' where /proc is not there)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return ""
    fields = text.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


@functools.cache
def _own_token(pid: int) -> str:
    return f"{machine_id()}.{pid}.{_start_ticks(pid) or 0}"


def owner_token() -> str:
    return _own_token(os.getpid())


def claim_suffix() -> str:
    return f"{CLAIM_MARK}{owner_token()}-{int(time.time())}"


def claim_is_stale(name: str, stale_claim_s: float, now: float | None = None) -> bool:
    """Is the claim in file ``name`` held by nobody alive (so it may be taken over)?"""
    owner = name.split(CLAIM_MARK, 1)[1]
    token, _, stamp = owner.rpartition("-")
    age = (now or time.time()) - int(stamp) if stamp.isdigit() else float("inf")
    parts = token.split(".")
    if len(parts) == 3:
        machine, pid_text, ticks = parts
        if machine != machine_id():
            return age > stale_claim_s  # another machine (or boot): cannot check its pids
        if not pid_text.isdigit() or not pid_alive(int(pid_text)):
            return True
        return ticks not in ("0", _start_ticks(int(pid_text)) or "0")  # pid reused
    pid_text = token if token else stamp  # older "pid-time" claims
    return not (pid_text.isdigit() and pid_alive(int(pid_text))) or age > stale_claim_s


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
