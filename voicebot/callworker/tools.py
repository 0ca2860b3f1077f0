"""Executing a dialplan's tool calls: HTTP (httpx, async) to admin-allowlisted bases only.

* The URL, and every redirect, must be under a base of the admin's ``tools_allow`` (same scheme, host,
  port and a path below the base's, no ``..`` segments, no user info): a backend that answers 30x
  cannot send the bot elsewhere. A redirect to another origin, even an allowed one, goes without the
  credentials (headers that came from ``${env:NAME}`` secrets, Authorization, Cookie).
* The integration's ``timeout_s`` bounds each whole attempt (connect, send, every byte of the reply),
  not each socket operation; ``retries`` repeat on 5xx and network errors (never on 4xx), with the same
  Idempotency-Key. The reply must be JSON under 1 MB (read no further).
* Every request carries a W3C ``traceparent`` (the call's trace) and, when given, ``Idempotency-Key``.

Never raises: the result is (ok, data-or-reason) for the interpreter; the reason never holds a secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import urllib.parse
from collections.abc import Sequence
from typing import Any

import httpx

from voicebot.dialplan.interpreter import ToolCall

MAX_REPLY = 1 << 20
MAX_REDIRECTS = 3
_SECRET = re.compile(r"\$\{env:([A-Z][A-Z0-9_]*)\}")
_CREDENTIALS = ("authorization", "proxy-authorization", "cookie")


def allowed(url: str, bases: Sequence[str]) -> bool:
    """Only URLs under a base the admin configured (a dialplan cannot send data anywhere else)."""
    target = urllib.parse.urlsplit(url)
    if target.username or target.password or not target.hostname:
        return False
    path = urllib.parse.unquote(target.path) or "/"
    if any(seg in (".", "..") for seg in path.split("/")):
        return False  # /api/../admin is not under /api, whatever the string says
    for base in bases:
        b = urllib.parse.urlsplit(base.rstrip("/"))
        same_origin = (b.scheme, b.hostname, b.port) == (target.scheme, target.hostname, target.port)
        root = b.path.rstrip("/")
        if same_origin and (path.rstrip("/") == root or path.startswith(root + "/")):
            return True
    return False


def resolve_secrets(headers: dict[str, str]) -> tuple[dict[str, str], set[str]]:
    """The headers with ``${env:NAME}`` filled in, and the names of those that held a secret."""
    out, secret = {}, set()
    for name, value in headers.items():
        missing = [m.group(1) for m in _SECRET.finditer(value) if m.group(1) not in os.environ]
        if missing:
            raise KeyError(f"secret {missing[0]} is not set in the environment")
        if _SECRET.search(value):
            secret.add(name.lower())
        out[name] = _SECRET.sub(lambda m: os.environ[m.group(1)], value)
    return out, secret


def traceparent(trace_id: str) -> str:
    """A W3C traceparent for one request of the call ``trace_id`` (32 hex digits)."""
    trace = (trace_id.lower() + "0" * 32)[:32] if re.fullmatch(r"[0-9a-fA-F]{1,32}", trace_id) else None
    return f"00-{trace or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


async def execute(
    call: ToolCall,
    bases: Sequence[str],
    idempotency_key: str = "",
    trace_id: str = "",
    client: httpx.AsyncClient | None = None,
) -> tuple[bool, Any]:
    """Run the call. ``idempotency_key`` goes out as Idempotency-Key (the same key when a new worker
    retries a call its dead predecessor had in flight), so the backend can tell a retry."""
    if not allowed(call.url, bases):
        return False, f"{call.integration}: URL is not under an allowlisted base (settings tools_allow)"
    try:
        resolved, secret_names = resolve_secrets(call.headers)
    except KeyError as exc:
        return False, f"{call.integration}: {exc.args[0]}"
    headers = {"Accept": "application/json", **resolved}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    content = None
    if call.body is not None:
        content = json.dumps(call.body).encode()
        headers["Content-Type"] = "application/json"
    own = client is None
    http = client or httpx.AsyncClient(follow_redirects=False)
    last = ""
    try:
        for attempt in range(call.retries + 1):
            if attempt:
                await asyncio.sleep(min(2.0, 0.2 * 2**attempt))
            headers["traceparent"] = traceparent(trace_id)
            try:
                async with asyncio.timeout(call.timeout_s):
                    status, body = await _attempt(http, call, headers, content, bases, secret_names)
            except TimeoutError:
                last = f"no complete reply within {call.timeout_s:g} s"
                continue
            except _Refused as exc:
                return False, f"{call.integration}: {exc}"
            except httpx.HTTPError as exc:
                last = f"unreachable: {type(exc).__name__}"
                continue
            if status >= 500:
                last = f"HTTP {status}"
                continue
            if status >= 300:
                return False, f"{call.integration}: HTTP {status}"  # a 4xx will not get better
            try:
                return True, json.loads(body) if body else {}
            except json.JSONDecodeError:
                return False, f"{call.integration}: reply is not JSON"
        return False, f"{call.integration}: {last}"
    finally:
        if own:
            await http.aclose()


class _Refused(Exception):
    """A reply we will not follow or read (a redirect off the allowlist, a reply too large)."""


async def _attempt(
    http: httpx.AsyncClient,
    call: ToolCall,
    headers: dict[str, str],
    content: bytes | None,
    bases: Sequence[str],
    secret_names: set[str],
) -> tuple[int, bytes]:
    url, method, send = call.url, call.method, dict(headers)
    origin = urllib.parse.urlsplit(url)[:2]
    for _ in range(MAX_REDIRECTS + 1):
        async with http.stream(method, url, headers=send, content=content) as reply:
            if reply.is_redirect:
                target = urllib.parse.urljoin(url, reply.headers.get("location", ""))
                if not allowed(target, bases):
                    raise _Refused(f"HTTP {reply.status_code} to a URL outside the allowlist (not followed)")
                if urllib.parse.urlsplit(target)[:2] != origin:
                    # Another origin, even an allowed one, never gets our credentials.
                    send = {k: v for k, v in send.items() if k.lower() not in (*_CREDENTIALS, *secret_names)}
                if reply.status_code == 303 or (reply.status_code in (301, 302) and method == "POST"):
                    method, content = "GET", None
                url = target
                continue
            body = bytearray()
            async for chunk in reply.aiter_bytes():
                body += chunk
                if len(body) > MAX_REPLY:
                    raise _Refused("reply larger than 1 MB")
            return reply.status_code, bytes(body)
    raise _Refused(f"more than {MAX_REDIRECTS} redirects")
