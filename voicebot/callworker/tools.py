"""Executing a dialplan's tool calls: HTTP to admin-allowlisted bases, secrets by reference.

Runs in a worker thread (blocking urllib); bounded by the integration's timeout and retries; the
reply must be JSON under 1 MB. Never raises: the result is (ok, data-or-reason) for the interpreter.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from voicebot.dialplan.interpreter import ToolCall

MAX_REPLY = 1 << 20
_SECRET = re.compile(r"\$\{env:([A-Z][A-Z0-9_]*)\}")


def allowed(url: str, bases: Sequence[str]) -> bool:
    """Only URLs under a base the admin configured (a dialplan cannot send data anywhere else)."""
    return any(url == b.rstrip("/") or url.startswith(b.rstrip("/") + "/") for b in bases)


def resolve_secrets(headers: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        missing = [m.group(1) for m in _SECRET.finditer(value) if m.group(1) not in os.environ]
        if missing:
            raise KeyError(f"secret {missing[0]} is not set in the environment")
        out[name] = _SECRET.sub(lambda m: os.environ[m.group(1)], value)
    return out


def execute(call: ToolCall, bases: Sequence[str], idempotency_key: str = "") -> tuple[bool, Any]:
    """Run the call; ``idempotency_key`` goes out as the Idempotency-Key header (the same key when a
    new worker retries a call its dead predecessor had in flight), so the backend can tell a retry."""
    if not allowed(call.url, bases):
        return False, f"{call.integration}: URL is not under an allowlisted base (settings tools_allow)"
    try:
        headers = {"Accept": "application/json", **resolve_secrets(call.headers)}
    except KeyError as exc:
        return False, f"{call.integration}: {exc.args[0]}"
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    data = None
    if call.body is not None:
        data = json.dumps(call.body).encode()
        headers["Content-Type"] = "application/json"
    last = ""
    for attempt in range(call.retries + 1):
        if attempt:
            time.sleep(min(2.0, 0.2 * 2**attempt))
        request = urllib.request.Request(call.url, data=data, method=call.method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=call.timeout_s) as reply:
                body = reply.read(MAX_REPLY + 1)
            if len(body) > MAX_REPLY:
                return False, f"{call.integration}: reply larger than 1 MB"
            return True, json.loads(body) if body else {}
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if exc.code < 500:
                break  # a 4xx will not get better by asking again
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            last = f"unreachable: {getattr(exc, 'reason', exc)}"
        except json.JSONDecodeError:
            return False, f"{call.integration}: reply is not JSON"
    return False, f"{call.integration}: {last}"
