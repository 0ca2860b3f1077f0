"""A scripted OpenAI-compatible chat server on loopback: deterministic replies and tool calls, streamed
as server-sent events the way OpenAI's API streams them, for the LLM tests (a real HTTP server that
litellm talks to; the script only decides what the "model" says).

``script(messages, tools)`` returns a Reply: text, a tool call, an HTTP error status, or a hang (no
answer at all: a black-holed provider)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str = ""
    tool: str = ""  # name of the tool to call
    arguments: dict[str, Any] | str = field(default_factory=dict)
    status: int = 200  # not 200: an error reply
    hang_s: float = 0.0  # wait this long before answering anything


Script = Callable[[list[dict[str, Any]], list[dict[str, Any]]], Reply]


@dataclass
class ScriptedLlm:
    script: Script
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@contextlib.contextmanager
def serve(script: Script) -> Iterator[ScriptedLlm]:
    llm = ScriptedLlm(script)
    lock = threading.Lock()
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            with lock:
                llm.requests.append(body)
            reply = llm.script(body.get("messages", []), body.get("tools", []))
            if reply.hang_s:
                stop.wait(reply.hang_s)
            if reply.status != 200:
                data = json.dumps({"error": {"message": f"scripted {reply.status}", "type": "server_error"}})
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data.encode())
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            out = [_chunk({"role": "assistant", "content": ""})]
            words = reply.text.split(" ") if reply.text else []
            for i, word in enumerate(words):
                out.append(_chunk({"content": word if i == 0 else " " + word}))
            finish = "stop"
            if reply.tool:
                args = reply.arguments if isinstance(reply.arguments, str) else json.dumps(reply.arguments)
                call = {"index": 0, "id": f"call_{len(llm.requests)}", "type": "function"}
                out.append(
                    _chunk({"tool_calls": [{**call, "function": {"name": reply.tool, "arguments": ""}}]})
                )
                for i in range(0, len(args), 8):  # the arguments arrive in pieces, as they do
                    out.append(
                        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 8]}}]})
                    )
                finish = "tool_calls"
            out.append(_chunk({}, finish))
            usage = {
                "prompt_tokens": 40 + 10 * len(body.get("messages", [])),
                "completion_tokens": len(words) + 5,
            }
            done = {
                "id": "chatcmpl-scripted",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "scripted",
            }
            out.append(b"data: " + json.dumps({**done, "choices": [], "usage": usage}).encode() + b"\n\n")
            out.append(b"data: [DONE]\n\n")
            with contextlib.suppress(OSError):
                for piece in out:
                    self.wfile.write(piece)
                    self.wfile.flush()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    llm.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="scripted-llm", daemon=True)
    thread.start()
    try:
        yield llm
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def last_role(messages: list[dict[str, Any]]) -> str:
    return str(messages[-1].get("role", "")) if messages else ""
