"""A fault-injecting HTTP proxy in front of a real ``mlflow server`` (tests and the bench).

The faults production has, not mocks: the request really reaches the real server,
which executes it, and then the proxy

- ``lose``: drops the response (the connection is reset, an RST, after the server
  committed): the client cannot tell whether its write happened;
- ``error_after``: answers 500 although the server committed (a gateway timing out);
- ``refuse``: answers 500/503/429 *without* forwarding (throttling, overload);
- ``delay_s``: holds each request that long before forwarding (a slow network);
- ``down``: resets every connection at once (a dead server or a partitioned network).

Faults hit only requests whose method and path match ``only`` (e.g. writes), decided
by a seeded RNG so a run is reproducible. Counters say what was done to how many.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers import free_port

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
        "upgrade", "content-length"}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Faults:
    """What to do to matching requests; probabilities are per request."""

    lose: float = 0.0  # forwarded, executed, response dropped (RST)
    error_after: float = 0.0  # forwarded, executed, answered 500
    refuse: float = 0.0  # not forwarded, answered with ``refuse_status``
    refuse_status: int = 503
    delay_s: float = 0.0
    down: bool = False
    methods: frozenset[str] = WRITE_METHODS
    path_contains: str = ""  # e.g. "/runs/create"; "" matches every path
    seed: int = 25
    counts: dict[str, int] = field(default_factory=dict)


class FaultProxy:
    """``with FaultProxy(server_port, Faults(lose=0.1)) as proxy: ... proxy.url``."""

    def __init__(self, target_port: int, faults: Faults | None = None,
                 port: int | None = None) -> None:
        self.target_port = target_port
        self.faults = faults or Faults()
        self.port = port or free_port()
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._released = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, what: str) -> int:
        with self._lock:
            return self.faults.counts.get(what, 0)

    def _note(self, what: str) -> None:
        with self._lock:
            self.faults.counts[what] = self.faults.counts.get(what, 0) + 1

    def _decide(self, method: str, path: str) -> str | None:
        faults = self.faults
        if faults.down:
            return "down"
        if method not in faults.methods or faults.path_contains not in path:
            return None
        with self._lock:
            roll = self._rng.random()
        for name, chance in (("refuse", faults.refuse), ("lose", faults.lose),
                             ("error_after", faults.error_after)):
            if roll < chance:
                return name
            roll -= chance
        return None

    def release_held(self) -> None:
        """No more slowness: requests held by ``delay_s`` go on now, new ones are not held."""
        self.faults.delay_s = 0.0
        self._released.set()

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _handle(self) -> None:
                body = self._read_body()
                fault = proxy._decide(self.command, self.path)
                if fault == "down":
                    proxy._note("down")
                    self._reset()
                    return
                if fault == "refuse":
                    proxy._note("refuse")
                    self._answer(proxy.faults.refuse_status, b'{"error_code": '
                                 b'"TEMPORARILY_UNAVAILABLE", "message": "injected"}', {})
                    return
                if (proxy.faults.delay_s and self.command in proxy.faults.methods
                        and proxy.faults.path_contains in self.path):
                    proxy._released.wait(proxy.faults.delay_s)
                try:
                    status, headers, payload = self._forward(body)
                except OSError:
                    proxy._note("upstream_error")
                    self._reset()
                    return
                proxy._note("forwarded")
                if fault == "lose":
                    proxy._note("lose")
                    self._reset()
                elif fault == "error_after":
                    proxy._note("error_after")
                    self._answer(500, b'{"error_code": "INTERNAL_ERROR", "message": '
                                 b'"injected after commit"}', {})
                else:
                    self._answer(status, payload, headers)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    out = {k: v for k, v in response.getheaders() if k.lower() not in _HOP}
                    return response.status, out, payload
                finally:
                    conn.close()

            def _answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("server", "date"):
                        self.send_header(key, value)
                if "content-type" not in {k.lower() for k in headers}:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _reset(self) -> None:
                """Close with an RST: the client sees 'connection reset', no response."""
                self.close_connection = True
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()
                except OSError:
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a reset connection is the point, not an error

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
