"""A loopback OTLP/HTTP receiver for the benchmark: accepts span batches, counts, answers 200.

The OpenTelemetry mode measures what the OTel sink costs the *caller*; its spans must go
somewhere real over HTTP (the SDK's exporter serialises and posts them on its own thread)
without a collector to install. Bodies are read and dropped.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_server: ThreadingHTTPServer | None = None
_lock = threading.Lock()
received = {"requests": 0, "bytes": 0}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        received["requests"] += 1
        received["bytes"] += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def endpoint() -> str:
    """The receiver's base URL (started on first use, on a free loopback port)."""
    global _server
    with _lock:
        if _server is None:
            _server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            threading.Thread(target=_server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{_server.server_address[1]}"
