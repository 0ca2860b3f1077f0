"""Tool calls against real local HTTP servers: allowlist, redirects, secrets, retries, budgets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from voicebot.callworker.tools import allowed, execute
from voicebot.dialplan.interpreter import ToolCall

SEEN: list[dict[str, object]] = []
ELSEWHERE: list[dict[str, object]] = []  # what the other origin (a would-be exfiltration target) got
OTHER = {"base": ""}


class Api(BaseHTTPRequestHandler):
    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        seen = {
            "path": self.path,
            "auth": self.headers.get("Authorization"),
            "body": self.rfile.read(length).decode() if length else None,
            "key": self.headers.get("Idempotency-Key"),
            "traceparent": self.headers.get("traceparent"),
        }
        SEEN.append(seen)
        if self.path.startswith("/api/flaky"):
            self.send_response(503)
            self.end_headers()
            return
        if self.path.startswith("/api/missing"):
            self.send_response(404)
            self.end_headers()
            return
        if self.path.startswith("/api/moved-away"):
            self._redirect(f"{OTHER['base']}/collect")  # not under the allowlist
            return
        if self.path.startswith("/api/moved-across"):
            self._redirect(f"{OTHER['base']}/api/ok")  # another origin, allowlisted too
            return
        if self.path.startswith("/api/moved-up"):
            self._redirect("/admin/ok")  # same host, outside the base path
            return
        if self.path.startswith("/api/moved"):
            self._redirect("/api/ok")
            return
        if self.path.startswith("/api/slow"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            for _ in range(20):  # a byte every 0.2 s: no socket timeout ever fires
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)
            return
        if self.path.startswith("/api/huge"):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"[" + b"1," * 600_000 + b"1]")
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

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _reply

    def log_message(self, *args: object) -> None:
        pass


class Other(Api):
    def _reply(self) -> None:
        ELSEWHERE.append({"path": self.path, "auth": self.headers.get("Authorization")})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"other": true}')

    do_GET = do_POST = _reply


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, name="test-api", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server, root = _serve(Api)
    other, other_root = _serve(Other)
    OTHER["base"] = other_root
    yield f"{root}/api"
    server.shutdown()
    other.shutdown()


def call(url: str, **kw: object) -> ToolCall:
    fields: dict[str, object] = dict(
        integration="billing", method="GET", url=url, body=None, headers={}, timeout_s=2.0, retries=1
    )
    fields.update(kw)
    return ToolCall(**fields)  # type: ignore[arg-type]


async def test_success_with_secret_header_body_idempotency_key_and_traceparent(
    base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_TOKEN", "s3cr3t")
    SEEN.clear()
    ok, data = await execute(
        call(
            f"{base}/accounts/1/verify",
            method="POST",
            body={"pin": "1234"},
            headers={"Authorization": "Bearer ${env:BILLING_TOKEN}"},
        ),
        [base],
        idempotency_key="k-1",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )
    assert ok and data == {"balance": {"amount": 7}}
    (seen,) = SEEN
    assert (seen["path"], seen["auth"], seen["body"], seen["key"]) == (
        "/api/accounts/1/verify",
        "Bearer s3cr3t",
        '{"pin": "1234"}',
        "k-1",
    )
    assert str(seen["traceparent"]).startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")


async def test_urls_outside_the_allowlist_are_never_called(base: str) -> None:
    SEEN.clear()
    ok, why = await execute(call(f"{base}/accounts"), ["http://127.0.0.1:1/other"])
    assert not ok and "allowlisted" in why and SEEN == []
    assert not (await execute(call(f"{base}x/evil"), [base]))[0]  # a prefix that is not a path boundary
    assert not (await execute(call(f"{base}/../admin"), [base]))[0]  # not under /api, whatever the string
    assert not allowed(f"{base}/%2e%2e/admin", [base])
    assert not allowed(base.replace("http://", "http://user:pw@") + "/x", [base])
    assert SEEN == []


async def test_redirects_never_leave_the_allowlist_nor_carry_credentials_elsewhere(
    base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_TOKEN", "s3cr3t")
    auth = {"Authorization": "Bearer ${env:BILLING_TOKEN}"}
    SEEN.clear()
    ELSEWHERE.clear()
    ok, why = await execute(call(f"{base}/moved-away", headers=auth), [base])
    assert not ok and "outside the allowlist" in why and ELSEWHERE == []  # never followed
    ok, why = await execute(call(f"{base}/moved-up", headers=auth), [base])
    assert not ok and "outside the allowlist" in why
    assert (await execute(call(f"{base}/moved", headers=auth), [base])) == (True, {"balance": {"amount": 7}})
    assert SEEN[-1]["path"] == "/api/ok" and SEEN[-1]["auth"] == "Bearer s3cr3t"  # same origin: kept
    ok, data = await execute(call(f"{base}/moved-across", headers=auth), [base, f"{OTHER['base']}/api"])
    assert ok and data == {"other": True}
    assert ELSEWHERE == [{"path": "/api/ok", "auth": None}]  # allowed, but without the secret


async def test_errors_retries_budgets_and_missing_secrets(base: str) -> None:
    SEEN.clear()
    assert await execute(call(f"{base}/flaky"), [base]) == (False, "billing: HTTP 503")
    assert len(SEEN) == 2  # 5xx: retried once
    SEEN.clear()
    assert await execute(call(f"{base}/missing"), [base]) == (False, "billing: HTTP 404")
    assert len(SEEN) == 1  # 4xx: not retried
    assert await execute(call(f"{base}/text"), [base]) == (False, "billing: reply is not JSON")
    assert await execute(call(f"{base}/huge"), [base]) == (False, "billing: reply larger than 1 MB")
    ok, why = await execute(call(f"{base}/x", headers={"Authorization": "${env:NOT_SET_ANYWHERE}"}), [base])
    assert not ok and "NOT_SET_ANYWHERE is not set" in why
    ok, why = await execute(
        # refused at once; the budget is generous so that a loaded machine does not turn it into a timeout
        call("http://127.0.0.1:9/api/x", retries=0, timeout_s=5),
        ["http://127.0.0.1:9/api"],
    )
    assert not ok and "unreachable" in why


@pytest.mark.timeout(10)
async def test_the_timeout_bounds_the_whole_request_not_each_read(base: str) -> None:
    """The slow endpoint sends a byte every 0.2 s for 4 s: a per-read timeout of 1 s never fires."""
    started = time.monotonic()
    ok, why = await execute(call(f"{base}/slow", timeout_s=1.0, retries=0), [base])
    assert not ok and "within 1 s" in why
    assert time.monotonic() - started < 3.0
