"""Tool calls against a real local HTTP server: allowlist, secrets by reference, retries, errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from voicebot.callworker.tools import execute
from voicebot.dialplan.interpreter import ToolCall

SEEN: list[dict[str, object]] = []


class Api(BaseHTTPRequestHandler):
    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        SEEN.append(
            {
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "body": self.rfile.read(length).decode() if length else None,
            }
        )
        if self.path.startswith("/api/flaky"):
            self.send_response(503)
            self.end_headers()
            return
        if self.path.startswith("/api/missing"):
            self.send_response(404)
            self.end_headers()
            return
        payload = (
            b"not json"
            if self.path.startswith("/api/text")
            else json.dumps({"balance": {"amount": 7}}).encode()
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _reply

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, name="test-api", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()


def call(url: str, **kw: object) -> ToolCall:
    fields: dict[str, object] = dict(
        integration="billing", method="GET", url=url, body=None, headers={}, timeout_s=2.0, retries=1
    )
    fields.update(kw)
    return ToolCall(**fields)  # type: ignore[arg-type]


def test_success_with_secret_header_and_body(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_TOKEN", "s3cr3t")
    SEEN.clear()
    ok, data = execute(
        call(
            f"{base}/accounts/1/verify",
            method="POST",
            body={"pin": "1234"},
            headers={"Authorization": "Bearer ${env:BILLING_TOKEN}"},
        ),
        [base],
    )
    assert ok and data == {"balance": {"amount": 7}}
    assert SEEN == [{"path": "/api/accounts/1/verify", "auth": "Bearer s3cr3t", "body": '{"pin": "1234"}'}]


def test_urls_outside_the_allowlist_are_never_called(base: str) -> None:
    SEEN.clear()
    ok, why = execute(call(f"{base}/accounts"), ["http://127.0.0.1:1/other"])
    assert not ok and "allowlisted" in why and SEEN == []
    assert not execute(call(f"{base}x/evil"), [base])[0]  # a prefix that is not a path boundary


def test_errors_retries_and_missing_secrets(base: str) -> None:
    SEEN.clear()
    assert execute(call(f"{base}/flaky"), [base]) == (False, "billing: HTTP 503")
    assert len(SEEN) == 2  # 5xx: retried once
    SEEN.clear()
    assert execute(call(f"{base}/missing"), [base]) == (False, "billing: HTTP 404")
    assert len(SEEN) == 1  # 4xx: not retried
    assert execute(call(f"{base}/text"), [base]) == (False, "billing: reply is not JSON")
    ok, why = execute(call(f"{base}/x", headers={"Authorization": "${env:NOT_SET_ANYWHERE}"}), [base])
    assert not ok and "NOT_SET_ANYWHERE is not set" in why
    ok, why = execute(call("http://127.0.0.1:9/api/x", retries=0, timeout_s=0.5), ["http://127.0.0.1:9/api"])
    assert not ok and "unreachable" in why
