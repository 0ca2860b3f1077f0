"""A real JSON-over-HTTP backend on loopback for tests: the tool servers dialplans and agents call.

``JsonApi(answer)`` serves every GET/POST/PUT/PATCH/DELETE with ``answer(request)`` on its own thread
and keeps each request it got in ``seen`` (method, path, headers, parsed body), so a test checks what
the bot sent as well as what it did with the answer. Use it as a context manager (stopped at the end).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # as sent (lookup is case-insensitive)
    body: Any  # the JSON body parsed; the text when it is not JSON; None when empty


@dataclass
class Response:
    json: Any = None  # sent as application/json (nothing when None)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # a slow backend: wait this long before answering


Answer = Callable[[Request], Response | dict[str, Any]]  # a dict is a 200 with that JSON


class JsonApi:
    def __init__(self, answer: Answer, name: str = "json-api") -> None:
        self.seen: list[Request] = []
        self.arrived = threading.Event()  # set at the first request
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                request = Request(self.command, self.path, self.headers, body)
                api.seen.append(request)
                api.arrived.set()
                reply = answer(request)
                if isinstance(reply, dict):
                    reply = Response(reply)
                time.sleep(reply.delay_s)
                data = b"" if reply.json is None else json.dumps(reply.json).encode()
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.json is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.seen]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> JsonApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
