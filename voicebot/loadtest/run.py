"""Run scripted callers against a SIP target from one process: at most ``concurrency`` calls up,
started over ``ramp_s``, until ``calls`` were placed (or ``duration_s`` has passed), round-robin
over the scripts. One pjsua2 endpoint, polled from this thread; media on pjmedia's clock thread.
The pjsua2 wheel holds 4 calls per endpoint, so larger runs are shared out over processes
(shards.py), each running this."""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import pjsua2 as pj

from voicebot.errors import ConfigError
from voicebot.loadtest import voice
from voicebot.loadtest.caller import ScriptedCall
from voicebot.loadtest.results import CallResult
from voicebot.loadtest.script import CallerScript
from voicebot.signaling.endpoint import CODEC_IDS

SAMPLE_RATE = 16000
PROGRESS_S = 1.0


@dataclass(frozen=True)
class Plan:
    target: str  # sip:100@127.0.0.1:5060
    concurrency: int = 2
    calls: int = 0  # 0: as many as concurrency (or, with duration_s, until it ends)
    duration_s: float = 0.0  # keep placing calls this long
    ramp_s: float = 0.0  # reach full concurrency over this long
    max_call_s: float = 120.0
    bind: str = ""  # local address ("" = loopback for a loopback target, else any)
    voice: str = "piper"  # the callers' voice (voice.py)
    start_delay_s: float = 0.0  # a burst's callers: wait this long, then start together
    rtp_loss_pct: int = 0  # % of RTP packets the callers drop, each way (pjmedia's tx/rx drop)
    codecs: tuple[str, ...] = ("PCMU", "PCMA")


def local_address(target: str) -> str:
    host = urlsplit(target.replace("sip:", "sip://", 1)).hostname or ""
    try:
        return "127.0.0.1" if ipaddress.ip_address(host).is_loopback else ""
    except ValueError:
        return "127.0.0.1" if host == "localhost" else ""


MAX_CALLS = 4  # per pjsua2 endpoint: the wheel's PJSUA_MAX_CALLS (libInit refuses more)


def run(
    plan: Plan, scripts: Sequence[CallerScript], progress: Callable[[dict[str, int]], None]
) -> tuple[list[CallResult], float]:
    if not scripts:
        raise ConfigError("no scripted caller to run (every test was left out?)")
    if plan.concurrency > MAX_CALLS - 1:
        raise ConfigError(
            f"one process places at most {MAX_CALLS - 1} calls at once (shards.py shares out more)"
        )
    if not plan.target.startswith("sip:"):
        raise ConfigError(f"the target must be a SIP URI (sip:100@host:port), not {plan.target!r}")
    for script in scripts:  # every utterance synthesised before the first call: none waits for it
        for action in script.actions:
            if action.kind not in ("keys", "silence"):
                voice.audio(action.kind, action.value, SAMPLE_RATE, plan.voice)
    if plan.start_delay_s:
        progress({})
        time.sleep(plan.start_delay_s)
    ep = _endpoint(plan)
    acc = pj.Account()
    calls: list[ScriptedCall] = []
    try:
        cfg = pj.AccountConfig()
        bind = plan.bind or local_address(plan.target) or "127.0.0.1"
        cfg.idUri = f"sip:loadtest@{bind}"
        cfg.mediaConfig.transportConfig.boundAddress = plan.bind or local_address(plan.target)
        cfg.mediaConfig.transportConfig.port = 0  # RTP on ports the system picks: shards never collide
        acc.create(cfg)
        wall = _drive(plan, scripts, ep, acc, calls, progress)
        _settle(ep, 1.0)
    except Exception:
        # Said now, then let go: the traceback's frames hold calls, which must be freed before
        # the library is destroyed (else the process aborts instead of reporting this).
        failure = traceback.format_exc()
        print(failure, file=sys.stderr, flush=True)
    else:
        failure = ""
    results = [c.result for c in calls]
    _close(ep, acc, calls)
    if failure:
        raise RuntimeError(f"the load test stopped: {failure}")
    return results, wall


def _drive(
    plan: Plan,
    scripts: Sequence[CallerScript],
    ep: pj.Endpoint,
    acc: pj.Account,
    calls: list[ScriptedCall],
    progress: Callable[[dict[str, int]], None],
) -> float:
    """Place and tick the calls until the plan is done; the wall time. (Its own function: the calls
    it names locally must be gone before the library is destroyed.)"""
    total = plan.calls or (0 if plan.duration_s else plan.concurrency)
    started_at = time.monotonic()
    next_progress = 0.0
    while True:
        now = time.monotonic()
        elapsed = now - started_at
        up = [c for c in calls if not c.ended]
        allowed = (
            plan.concurrency
            if plan.ramp_s <= 0
            else max(1, int(plan.concurrency * min(1.0, elapsed / plan.ramp_s)))
        )
        more = (len(calls) < total) if total else (elapsed < plan.duration_s)
        if more and len(up) < allowed:
            script = scripts[len(calls) % len(scripts)]
            call = ScriptedCall(acc, script, SAMPLE_RATE, plan.max_call_s, plan.voice)
            call.result.burst = plan.start_delay_s > 0
            calls.append(call)
            try:
                call.makeCall(plan.target, pj.CallOpParam(True))
            except pj.Error as exc:
                call.ended = True
                call.result.outcome, call.result.why = "failed", f"INVITE not sent: {exc.info()}"[:200]
            continue
        for call in up:
            call.tick(now)
        if not more and not up:
            break
        if now >= next_progress:
            next_progress = now + PROGRESS_S
            done = [c.result for c in calls if c.ended]
            progress(
                {
                    "placed": len(calls),
                    "up": len(up),
                    "done": len(done),
                    "ok": sum(r.ok for r in done),
                    "failed": sum(r.outcome == "failed" for r in done),
                }
            )
        ep.libHandleEvents(10)
    return time.monotonic() - started_at


def _close(ep: pj.Endpoint, acc: pj.Account, calls: list[ScriptedCall]) -> None:
    """Hang up, let the BYEs go, then drop every pjsua2 object before the library goes: a Call
    freed after libDestroy aborts the process (its destructor asserts on its call id)."""
    _hang_up(calls)
    _settle(ep, 1.0)
    while calls:  # popped and dropped one by one: no name is left holding a call
        calls.pop().release_media()
    gc.collect()
    with contextlib.suppress(pj.Error):
        acc.shutdown()
    ep.libDestroy()


def _hang_up(calls: list[ScriptedCall]) -> None:
    for call in calls:
        if not call.ended:
            with contextlib.suppress(pj.Error):
                call.hangup(pj.CallOpParam(True))


def _settle(ep: pj.Endpoint, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ep.libHandleEvents(10)


def _endpoint(plan: Plan) -> pj.Endpoint:
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = MAX_CALLS
    cfg.uaConfig.userAgent = "voicebot-loadtest"
    cfg.medConfig.clockRate = SAMPLE_RATE
    cfg.medConfig.sndClockRate = SAMPLE_RATE
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    # Packet loss on the wire: pjmedia drops this share of the RTP it sends and of the RTP it receives
    cfg.medConfig.txDropPct = plan.rtp_loss_pct
    cfg.medConfig.rxDropPct = plan.rtp_loss_pct
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    try:
        ep.libInit(cfg)
    except pj.Error as exc:
        ep.libDestroy()
        raise ConfigError(f"cannot start the SIP stack for {plan.concurrency} calls: {exc.info()}") from None
    ep.audDevManager().setNullDev()
    tc = pj.TransportConfig()
    tc.port = 0
    tc.boundAddress = plan.bind or local_address(plan.target)
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
    ep.libStart()
    order = {CODEC_IDS[name]: 255 - i for i, name in enumerate(plan.codecs) if name in CODEC_IDS}
    for info in ep.codecEnum2():
        ep.codecSetPriority(info.codecId, order.get(info.codecId, 0))
    return ep
