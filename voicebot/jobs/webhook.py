"""Signed webhooks to CRM endpoints: what is sent, how it is signed, how a receiver checks it.

The body is the call as JSON. The signature header is ``t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>." + body>`` with the key from the webhook's ``secret_env`` variable; a receiver recomputes it,
compares in constant time and refuses old timestamps (replays). ``X-Voicebot-Delivery`` is the same
for every attempt of one delivery, so a receiver can drop a repeat it already took.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any

import httpx

from voicebot.db.models import Call
from voicebot.jobs.settings import WebhookSettings

SIGNATURE = "X-Voicebot-Signature"
DELIVERY = "X-Voicebot-Delivery"
TRANSCRIPT_KINDS = ("transcript", "dtmf", "transfer_result", "summary")


class DeliveryFailed(Exception):
    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent  # the receiver refused this delivery itself: retrying will not help


def body(call: Call) -> bytes:
    events = [
        {"at": e.at.isoformat(), "kind": e.kind, **e.data} for e in call.events if e.kind in TRANSCRIPT_KINDS
    ]
    doc: dict[str, Any] = {
        "event": "call.ended",
        "call": {
            "id": call.id,
            "sip_call_id": call.sip_call_id,
            "trunk": call.trunk,
            "caller": call.caller,
            "callee": call.callee,
            "dialplan": call.dialplan,
            "started_at": call.started_at.isoformat() if call.started_at else None,
            "ended_at": call.ended_at.isoformat() if call.ended_at else None,
            "disposition": call.disposition,
            "transfer_queue": call.transfer_queue,
            "end_reason": call.end_reason,
        },
        "events": events,
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: bytes, payload: bytes, t: int) -> str:
    mac = hmac.new(secret, f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(
    secret: bytes, header: str, payload: bytes, now: float | None = None, tolerance_s: int = 300
) -> bool:
    """What a receiver does (and the tests do): the right key, this body, recent enough."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = sign(secret, payload, t).encode()
    return hmac.compare_digest(expected, f"t={t},v1={parts.get('v1', '')}".encode())


def secret_of(hook: WebhookSettings) -> bytes | None:
    if not hook.secret_env:
        return None
    value = os.environ.get(hook.secret_env)
    if not value:
        raise DeliveryFailed(f"webhook {hook.name}: environment variable {hook.secret_env} is not set", True)
    return value.encode()


async def deliver(hook: WebhookSettings, payload: bytes, delivery_id: str) -> int:
    """POST once; returns the status on 2xx, raises DeliveryFailed otherwise. Redirects are not
    followed (a CRM that moved is the admin's to re-point, and a signed body goes nowhere else)."""
    headers = {"Content-Type": "application/json", DELIVERY: delivery_id, "User-Agent": "voicebot-webhook"}
    secret = secret_of(hook)
    if secret is not None:
        headers[SIGNATURE] = sign(secret, payload, int(time.time()))
    try:
        async with httpx.AsyncClient(timeout=hook.timeout_s, follow_redirects=False) as client:
            response = await client.post(hook.url, content=payload, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    if response.is_success:
        return response.status_code
    why = f"HTTP {response.status_code} from {hook.name}: {response.text[:200]}"
    retry = response.status_code in (408, 425, 429) or response.status_code >= 500
    raise DeliveryFailed(why, permanent=not retry)
