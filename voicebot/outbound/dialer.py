"""The `outbound` job: place one booked call through this node's UA workers and wait until it is
answered or has failed (then the job is done, or retried after outbound.retry_s, doubling).

Checked again here, at dial time: the destination policy (settings may have changed since booking),
calling hours (a due call outside them waits for the next window) and the trunk's limits
(concurrent calls, calls per second; waiting for them is not a failed attempt). Only the job worker
that `voicebot run` starts has a dialer: a standalone `voicebot jobs run` never takes these jobs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Sequence
from typing import Any

from voicebot.logs import get_logger, masked_number
from voicebot.outbound import policy, schedule, settings
from voicebot.outbound.limits import TrunkLimit
from voicebot.outbound.settings import ANSWER_MARGIN_S, DialTrunk, OutboundSettings
from voicebot.outbound.spool import Dial, Spool

log = get_logger(__name__)
CLAIM_WAIT_S = settings.CLAIM_WAIT_S  # module-level, so a test can shorten it
POLL_S = 0.1
# A final answer that says the number is wrong, not busy: no point ringing it again.
PERMANENT_CODES = frozenset({403, 404, 410, 484, 485, 488, 603, 604})


class Deferred(Exception):
    """Not now (calling hours, a trunk limit, every slot busy): the job waits ``delay_s``, no attempt used."""

    def __init__(self, why: str, delay_s: float) -> None:
        super().__init__(why)
        self.delay_s = delay_s


class DialFailed(Exception):
    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Dialer:
    def __init__(self, cfg: OutboundSettings, trunks: Sequence[DialTrunk], spool: Spool) -> None:
        self.cfg = cfg
        self.trunks = {t.name: t for t in trunks}
        self.limits = {t.name: TrunkLimit(t.max_calls, t.cps) for t in trunks}
        self.spool = spool.ensure()

    async def place(self, job_id: int, attempt: int, payload: dict[str, Any]) -> dict[str, object]:
        verdict = policy.check(str(payload.get("number", "")), self.cfg.policy)
        if isinstance(verdict, policy.Refused):
            raise DialFailed(f"number refused: {verdict.reason}", permanent=True)
        trunk = self.trunks.get(str(payload.get("trunk", "")))
        if trunk is None:
            raise DialFailed(f"trunk {payload.get('trunk')!r} cannot place calls here", permanent=True)
        now = dt.datetime.now(dt.UTC)
        late = self._late_s(payload, attempt, now)
        if late > self.cfg.max_late_s:
            raise DialFailed(f"{late / 60:.0f} min past its time (outbound.max_late_s)", permanent=True)
        window = schedule.next_window(now, self.cfg)
        if window > now:
            hours = self.cfg.calling_hours
            raise Deferred(f"outside calling hours ({hours})", (window - now).total_seconds())
        wait = self.limits[trunk.name].wait_s(self.spool.live(trunk.name, time.time()), time.monotonic())
        if wait > 0:
            raise Deferred(f"trunk {trunk.name} is at its limit", wait)
        dial = Dial(
            # Unique per submission: a deferred job submits again under the same attempt, and must
            # never read the outcome its withdrawn or expired request left behind.
            id=f"job{job_id}-{attempt}-{uuid.uuid4().hex[:8]}",
            number=verdict.e164,
            trunk=trunk.name,
            caller_id=trunk.caller_id,
            dialplan=str(payload.get("dialplan", "")),
            entry=str(payload.get("entry", "")),
            variables=dict(payload.get("variables") or {}),
            ring_timeout_s=self.cfg.ring_timeout_s,
            not_after=time.time() + CLAIM_WAIT_S,
        )
        self.spool.submit(dial)
        log.info("outbound.queued", dial=dial.id, trunk=trunk.name, number=masked_number(dial.number))
        try:
            return await self._outcome(dial)
        except BaseException:
            # Stopped, lease lost or given up: a request still unclaimed must never ring late.
            self.spool.withdraw(dial.id)
            raise

    def _late_s(self, payload: dict[str, Any], attempt: int, now: dt.datetime) -> float:
        """How late the call is beyond what its failed attempts' retry waits explain."""
        try:
            promised = dt.datetime.fromisoformat(str(payload["at"]))
        except (KeyError, ValueError):
            return 0.0  # booked by an older version: no promise recorded
        retries = self.cfg.retry_s * float(2 ** max(0, attempt - 1) - 1)
        return (now - promised).total_seconds() - retries

    async def _outcome(self, dial: Dial) -> dict[str, object]:
        started = time.monotonic()
        claimed_by = started + CLAIM_WAIT_S
        deadline = started + CLAIM_WAIT_S + dial.ring_timeout_s + ANSWER_MARGIN_S
        while True:
            out = self.spool.outcome(dial.id)
            now = time.monotonic()
            if out is None and now > claimed_by and self.spool.withdraw(dial.id):
                raise Deferred("no UA worker had a free call slot", 5.0)
            if out is not None and out.state == "failed" and out.reason == "expired":
                raise Deferred("no UA worker had a free call slot", 5.0)
            if out is not None and out.state in ("answered", "ended"):
                ms = round((now - started) * 1000)
                log.info("outbound.answered", dial=dial.id, call_id=out.call_id, ms=ms)
                return {"call_id": out.call_id, "dial": dial.id, "answered_ms": ms}
            if out is not None and out.state == "failed":
                raise DialFailed(f"{out.code} {out.reason}".strip(), permanent=out.code in PERMANENT_CODES)
            if now > deadline:
                state = out.state if out else "?"
                raise DialFailed(f"no outcome within {deadline - started:.0f} s (state {state})")
            await asyncio.sleep(POLL_S)
