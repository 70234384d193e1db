"""Real services for tests: a throwaway PostgreSQL cluster, a real ``mlflow server``, S3.

The S3-compatible server is moto's server mode (``moto[server]`` from PyPI), on loopback,
in memory: it forgets its buckets when stopped, so :meth:`S3Server.start` creates them.
``scripts/team_stack.py`` (``make team-stack``) starts the same three for a local team setup.

PostgreSQL comes from Debian's ``postgresql`` package (``.ci/run`` installs it). Each
session initialises its own cluster in a temp dir on a free port, so tests never touch
a system database. As root, the server runs as the ``postgres`` user (it refuses root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if candidates and Path(candidates[-1], "initdb").exists():
        return Path(candidates[-1])
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


@dataclass
class PostgresCluster:
    bindir: Path
    datadir: Path
    port: int
    as_user: list[str]

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(
            [
                *self.as_user,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


class PostgresUnavailable(RuntimeError):
    pass


def start_postgres() -> PostgresCluster:
    """Initialise and start a private cluster; raises PostgresUnavailable with the reason."""
    bindir = _pg_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "PostgreSQL server binaries not found (apt-get install postgresql)"
        )
    root = Path(tempfile.mkdtemp(prefix="ca-pg-", dir="/tmp"))
    datadir = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresUnavailable("running as root and no 'postgres' user exists") from exc
        os.chown(root, pw.pw_uid, pw.pw_gid)
        root.chmod(0o755)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    steps = [
        [
            *as_user,
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        [
            *as_user,
            str(bindir / "pg_ctl"),
            "-D",
            str(datadir),
            "-l",
            str(root / "log.txt"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off",
            "start",
        ],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            log = (root / "log.txt").read_text() if (root / "log.txt").exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable(f"{cmd[len(as_user)]} failed: {proc.stderr}{log}"[-2000:])
    return PostgresCluster(bindir=bindir, datadir=datadir, port=port, as_user=as_user)


S3_ACCESS_KEY = "testing"  # moto accepts any credentials; these never leave loopback
S3_SECRET_KEY = "testing"


class S3Server:
    """moto's S3 server on 127.0.0.1; stop/start on the same port simulates an S3 outage."""

    def __init__(self, bucket: str, log_dir: Path, port: int | None = None) -> None:
        self.bucket = bucket
        self.port = port or free_port()
        self.log_path = log_dir / f"s3-server-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What an S3 client (boto3, ``mlflow server``) needs to use this server."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=S3_ACCESS_KEY,
                            aws_secret_access_key=S3_SECRET_KEY, region_name="us-east-1")

    def start(self, timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto server exited: {self.log_path.read_text()[-3000:]}")
            try:
                requests.get(self.url + "/moto-api/", timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"moto server did not start: {self.log_path.read_text()[-3000:]}")
        self.client().create_bucket(Bucket=self.bucket)

    def objects(self, prefix: str = "") -> list[str]:
        page = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for o in page.get("Contents", [])]

    def stop(self) -> None:
        _stop_process_group(self._proc, self.port)
        self._proc = None


class MlflowServer:
    """A real ``mlflow server`` process that tests can stop and restart on the same port.

    ``artifacts_destination`` (e.g. ``s3://bucket``) replaces the local artifact directory;
    ``env`` carries what that store needs (an :class:`S3Server`'s ``env``).
    """

    def __init__(
        self,
        backend_uri: str,
        artifacts_dir: Path,
        port: int | None = None,
        *,
        artifacts_destination: str | None = None,
        env: dict[str, str] | None = None,
        workers: int = 1,
        extra_args: list[str] | None = None,
    ) -> None:
        self.backend_uri = backend_uri
        self.artifacts_dir = artifacts_dir
        self.artifacts_destination = artifacts_destination or artifacts_dir.as_uri()
        self.extra_env = dict(env or {})
        self.workers = workers
        self.extra_args = list(extra_args or [])  # e.g. --uvicorn-opts for a loaded host
        self.port = port or free_port()
        self.log_path = artifacts_dir.parent / f"mlflow-server-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> None:
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                self.backend_uri,
                "--artifacts-destination",
                self.artifacts_destination,
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", **self.extra_env},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not start: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        _stop_process_group(proc, self.port)


def _stop_process_group(proc: subprocess.Popen[bytes] | None, port: int) -> None:
    """Stop a server started in its own session, then wait until its port is free again."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    # Wait until the port is really free so a restart can bind it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.2)


class LatencyProxy:
    """A TCP proxy on 127.0.0.1 that delays every client->server chunk by ``delay`` seconds."""

    def __init__(self, target_port: int, delay: float) -> None:
        import asyncio
        import threading

        self.target_port = target_port
        self.delay = delay
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: object | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self._loop)

        async def pipe(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delayed: bool
        ) -> None:
            try:
                while data := await reader.read(65536):
                    if delayed and self.delay:
                        await asyncio.sleep(self.delay)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            try:
                server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                client_w.close()
                return
            await asyncio.gather(pipe(client_r, server_w, True), pipe(server_r, client_w, False))

        async def main() -> None:
            self._server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            self._ready.set()

        self._loop.run_until_complete(main())
        self._loop.run_forever()

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        import asyncio

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()  # type: ignore[attr-defined]
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(10)
