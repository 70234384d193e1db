"""A tiny local HTTP server speaking the OpenAI, Anthropic and Gemini wire formats.

The real LangChain chat models (langchain-openai, -anthropic, -google-genai) are
pointed at it through their base URL, so the clients' own parsing produces the
messages our usage extraction reads. Responses follow each provider's documented
JSON (and SSE for streaming); usage numbers are set per test on the server.

Routes:
- ``POST /v1/chat/completions``                     OpenAI Chat Completions (+ SSE)
- ``POST /v1/messages``                             Anthropic Messages (+ SSE)
- ``POST /v1beta/models/{model}:generateContent``   Gemini
- ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TEXT_PARTS = ("Hello", " from", " the fake provider.")

OPENAI_ECHO = {"gpt-4o": "gpt-4o-2024-08-06", "o3": "o3-2025-04-16",
               "o4-mini": "o4-mini-2025-04-16"}
ANTHROPIC_ECHO = {"claude-sonnet-4": "claude-sonnet-4-20250514"}


class FakeProviderServer:
    """Start with :meth:`start`, stop with :meth:`stop`; set ``*_usage`` before a call.

    ``openai_usage`` / ``anthropic_usage`` / ``gemini_usage`` are the provider's raw
    usage objects exactly as its API returns them. ``requests`` records every
    ``(path, json_body)`` received.
    """

    def __init__(self) -> None:
        self.openai_usage: dict[str, Any] = {}
        self.anthropic_usage: dict[str, Any] = {}
        self.gemini_usage: dict[str, Any] = {}
        # Optional: the OpenAI reply text for a request body (default: TEXT_PARTS joined).
        self.openai_reply: Callable[[dict[str, Any]], str] | None = None
        # Optional: an HTTP error status every OpenAI request gets (429: a rate limit).
        self.openai_error: int | None = None
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeProviderServer:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # random free port
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _Handler(BaseHTTPRequestHandler):
    server_owner: FakeProviderServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    # -- plumbing ------------------------------------------------------------------

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        return json.loads(raw or b"{}")

    def _json(self, payload: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[str | None, Any]]) -> None:
        chunks = []
        for event, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            prefix = f"event: {event}\n" if event else ""
            chunks.append(f"{prefix}data: {text}\n\n".encode())
        body = b"".join(chunks)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self._body()
        path = self.path
        self.server_owner.requests.append((path, body))
        route = path.split("?", 1)[0]  # the beta Messages API posts to /v1/messages?beta=true
        if route.endswith("/chat/completions"):
            self._openai(body)
        elif route.endswith("/messages"):
            self._anthropic(body)
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            model = path.split("/models/", 1)[1].split(":", 1)[0]
            self._gemini(model, stream=":streamGenerateContent" in path)
        else:
            self._json({"error": {"message": f"no route {path}"}}, status=404)

    # -- OpenAI --------------------------------------------------------------------

    def _openai(self, body: dict[str, Any]) -> None:
        status = self.server_owner.openai_error
        if status is not None:  # documented error body: {"error": {message, type, code}}
            self._json({"error": {"message": "Rate limit reached", "type": "requests",
                                  "param": None, "code": "rate_limit_exceeded"}}, status=status)
            return
        model = OPENAI_ECHO.get(body.get("model", ""), body.get("model", ""))
        usage = self.server_owner.openai_usage
        base = {"id": "chatcmpl-fake", "created": 1_700_000_000, "model": model,
                "system_fingerprint": "fp_fake"}
        if not body.get("stream"):
            self._json({
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": self._openai_text(body),
                                         "refusal": None}}],
                "usage": usage,
            })
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events: list[tuple[str | None, Any]] = []
        for i, part in enumerate(TEXT_PARTS):
            delta = {"role": "assistant", "content": part} if i == 0 else {"content": part}
            chunk = {**base, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            if include_usage:
                chunk["usage"] = None
            events.append((None, chunk))
        final = {**base, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        if include_usage:
            final["usage"] = None
        events.append((None, final))
        if include_usage:  # documented: one extra chunk, empty choices, the whole usage
            events.append((None, {**base, "object": "chat.completion.chunk", "choices": [],
                                  "usage": usage}))
        events.append((None, "[DONE]"))
        self._sse(events)

    def _openai_text(self, body: dict[str, Any]) -> str:
        reply = self.server_owner.openai_reply
        return reply(body) if reply is not None else "".join(TEXT_PARTS)

    # -- Anthropic -----------------------------------------------------------------

    def _anthropic(self, body: dict[str, Any]) -> None:
        model = ANTHROPIC_ECHO.get(body.get("model", ""), body.get("model", ""))
        usage = self.server_owner.anthropic_usage
        message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                   "stop_reason": "end_turn", "stop_sequence": None}
        if not body.get("stream"):
            self._json({**message, "content": [{"type": "text", "text": "".join(TEXT_PARTS)}],
                        "usage": usage})
            return
        start_usage = {**usage, "output_tokens": 1}
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start",
                               "message": {**message, "content": [], "stop_reason": None,
                                           "usage": start_usage}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("ping", {"type": "ping"}),
        ]
        for part in TEXT_PARTS:
            events.append(("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": part}}))
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            # Documented: message_delta usage is cumulative (current API: all counts).
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": usage}),
            ("message_stop", {"type": "message_stop"}),
        ]
        self._sse(events)

    # -- Gemini --------------------------------------------------------------------

    def _gemini(self, model: str, *, stream: bool) -> None:
        usage = self.server_owner.gemini_usage

        def response(text: str, usage_metadata: dict[str, Any], last: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"},
                                         "index": 0}
            if last:
                candidate["finishReason"] = "STOP"
            return {"candidates": [candidate], "usageMetadata": usage_metadata,
                    "modelVersion": model, "responseId": "resp-fake"}

        if not stream:
            self._json(response("".join(TEXT_PARTS), usage, last=True))
            return
        # Gemini streams cumulative usageMetadata on every chunk; the last one is complete.
        first = {"promptTokenCount": usage.get("promptTokenCount", 0),
                 "totalTokenCount": usage.get("promptTokenCount", 0)}
        if "cachedContentTokenCount" in usage:
            first["cachedContentTokenCount"] = usage["cachedContentTokenCount"]
        events: list[tuple[str | None, Any]] = [
            (None, response(TEXT_PARTS[0], first, last=False)),
            (None, response("".join(TEXT_PARTS[1:]), usage, last=True)),
        ]
        self._sse(events)
