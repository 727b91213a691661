"""A small real HTTP server on 127.0.0.1 standing in for the providers' gateways.

It records every request (method, path, query, headers, body) and answers from a script per path:
``gateway.script("/v3/push", Reply(500), Reply(200, {...}))`` answers the next two calls so; after
the script runs out, the path's default reply (or 404) answers.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float

    def q(self, name: str) -> str:
        return self.query[name][0]

    def json(self) -> Any:
        return json.loads(self.body)


class Gateway:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._scripts: dict[str, deque[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self._handlers: dict[str, Callable[[Recorded], Reply]] = {}
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = gateway._record_and_pick(
                    Recorded(
                        self.command,
                        url.path,
                        parse_qs(url.query, keep_blank_values=True),
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        time.monotonic(),
                    )
                )
                if reply.delay:
                    time.sleep(reply.delay)
                payload = b"" if reply.json is None else json.dumps(reply.json, ensure_ascii=False).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _handle
            do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(replies)

    def default(self, path: str, reply: Reply) -> None:
        with self._lock:
            self._defaults[path] = reply

    def handle(self, path: str, handler: Callable[[Recorded], Reply]) -> None:
        """Answer every call to ``path`` (after any script) with ``handler(request)``: a stateful provider."""
        with self._lock:
            self._handlers[path] = handler

    def to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _record_and_pick(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            queue = self._scripts.get(request.path)
            if queue:
                return queue.popleft()
            if request.path in self._handlers:
                return self._handlers[request.path](request)
            return self._defaults.get(request.path, Reply(404, {"error": f"nothing scripted for {request.path}"}))

    def __enter__(self) -> Gateway:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
