"""A real HTTP endpoint for webhook tests: answers with scripted statuses and keeps what it got."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """POSTs to /<name> get the next status of ``script[name]`` (the last one repeats; 200 if none)."""

    script: dict[str, list[int]] = field(default_factory=dict)
    got: list[Received] = field(default_factory=list)
    port: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def of(self, name: str) -> list[Received]:
        return [r for r in self.got if r.path == f"/{name}"]


@contextlib.contextmanager
def serve(script: dict[str, list[int]] | None = None) -> Iterator[Receiver]:
    rec = Receiver(script=dict(script or {}))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            name = self.path.strip("/")
            with lock:
                rec.got.append(Received(self.path, dict(self.headers.items()), body))
                statuses = rec.script.get(name, [200])
                status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
