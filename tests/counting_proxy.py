"""A loopback HTTP proxy that counts the requests a client really sends to a server.

Request counts per workflow are a behaviour (the issue asks for "fewer requests"), so
they are measured where they happen: on the wire between the client and ``mlflow
server``. The proxy pipes bytes unchanged (optionally delaying client->server chunks,
like :class:`tests.servers.LatencyProxy`) and parses the client's side passively with
HTTP/1.1 framing (``Content-Length`` and chunked bodies), so keep-alive connections
carrying many requests are counted request by request.

``drop_responses`` makes an *unknown outcome*: the server receives and processes the
request, then the proxy cuts the connection instead of passing its answer back, so the
client sees a failure for a write that landed and retries it (the exactly-once tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from dataclasses import dataclass, field

from tests.servers import free_port


@dataclass(slots=True)
class _RequestParser:
    """Incremental HTTP/1.1 request framing over one connection's client->server bytes."""

    buffer: bytearray = field(default_factory=bytearray)
    body_left: int = 0
    chunked: bool = False
    chunk_left: int = 0  # bytes of the current chunk (+ its CRLF) still to skip

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        self.buffer += data
        requests: list[tuple[str, str]] = []
        while True:
            if self.body_left:
                taken = min(self.body_left, len(self.buffer))
                del self.buffer[:taken]
                self.body_left -= taken
                if self.body_left:
                    return requests
            if self.chunked and not self._skip_chunks():
                return requests
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return requests
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            lines = head.split("\r\n")
            method, _, rest = lines[0].partition(" ")
            path = rest.rsplit(" ", 1)[0].split("?", 1)[0]
            requests.append((method, path))
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:])}
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self.chunked = True
            else:
                self.body_left = int(headers.get("content-length", "0") or 0)

    def _skip_chunks(self) -> bool:
        """Consume chunked body bytes; True once the last chunk and trailer are gone."""
        while True:
            if self.chunk_left:
                taken = min(self.chunk_left, len(self.buffer))
                del self.buffer[:taken]
                self.chunk_left -= taken
                if self.chunk_left:
                    return False
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return False
            size = int(bytes(self.buffer[:end]).split(b";")[0] or b"0", 16)
            if size == 0:
                trailer_end = self.buffer.find(b"\r\n\r\n")
                if trailer_end < 0:
                    return False
                del self.buffer[: trailer_end + 4]
                self.chunked = False
                return True
            del self.buffer[: end + 2]
            self.chunk_left = size + 2


class CountingProxy:
    """Counts (method, path) of every HTTP request passed to ``target_port``; thread-safe."""

    def __init__(self, target_port: int, delay: float = 0.0,
                 drop_responses: dict[str, int] | None = None) -> None:
        self.target_port = target_port
        self.delay = delay
        self.drop_responses = dict(drop_responses or {})  # "METHOD /path" -> how many
        self.port = free_port()
        self._requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def total(self) -> int:
        with self._lock:
            return len(self._requests)

    def counts(self) -> Counter[str]:
        """Requests by ``"METHOD /path"``, artifact paths folded to their endpoint."""
        with self._lock:
            requests = list(self._requests)
        return Counter(f"{m} {_endpoint(p)}" for m, p in requests)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, requests: list[tuple[str, str]]) -> bool:
        """Count ``requests``; True when one of them is to have its answer dropped."""
        drop = False
        if requests:
            with self._lock:
                self._requests.extend(requests)
                for method, path in requests:
                    key = f"{method} {path}"
                    if self.drop_responses.get(key, 0) > 0:
                        self.drop_responses[key] -= 1
                        drop = True
        return drop

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       parser: _RequestParser | None, cut: dict[str, bool]) -> None:
            try:
                while data := await reader.read(65536):
                    if parser is not None:
                        if self._record(parser.feed(data)):
                            cut["drop"] = True
                        if self.delay:
                            await asyncio.sleep(self.delay)
                    elif cut["drop"]:  # the server answered a request to drop: cut both ways
                        return
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
            cut = {"drop": False}
            with contextlib.suppress(asyncio.CancelledError):  # shutdown with connections open
                await asyncio.gather(pipe(client_r, server_w, _RequestParser(), cut),
                                     pipe(server_r, client_w, None, cut))

        async def main() -> None:
            self._server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            self._ready.set()

        self._loop.run_until_complete(main())
        self._loop.run_forever()

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(10)


def _endpoint(path: str) -> str:
    """``/api/2.0/mlflow-artifacts/artifacts/<exp>/<run>/...`` -> its endpoint prefix."""
    marker = "/mlflow-artifacts/artifacts/"
    if marker in path:
        return path[: path.index(marker) + len(marker)] + "..."
    return path
