"""A UA worker process: one pjsua2 endpoint (at most 4 calls, a wheel limit) and its call workers.

Main loop (one thread): ``libHandleEvents`` for SIP, then the IPC sockets of its per-call workers,
then housekeeping (pool, answer deadlines, RTP inactivity, transfer timeouts, drain). pjmedia's
clock thread only touches each call's :class:`CallAudioPort`.

SIGTERM drains: new INVITEs get 503, calls run on until ``drain_timeout_s``, the rest are hung up
with a BYE, then pjsua2 is shut down in the order that does not crash it (hang up, wait for
DISCONNECTED, drop every Call, destroy).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import fnmatch
import os
import selectors
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pjsua2 as pj

from voicebot import logs, metrics
from voicebot.console import live
from voicebot.console.live import LiveFile
from voicebot.errors import ProtocolError
from voicebot.ipc import proto
from voicebot.ipc.heartbeat import HeartbeatWriter
from voicebot.outbound.spool import Dial, Outcome, Spool
from voicebot.procutil import die_with_parent
from voicebot.signaling import sipmsg
from voicebot.signaling.admission import AdmissionInput, Admit, admit, source_ip
from voicebot.signaling.call import (
    TRANSFER_TIMEOUT_S,
    CallLeg,
    EndCause,
    VoiceCall,
    answer,
    hangup,
    new_call_id,
    transfer_target,
)
from voicebot.signaling.endpoint import create_endpoint, open_transports
from voicebot.signaling.params import TrunkParams, UAParams
from voicebot.ua.pool import CallWorkerPool, CallWorkerProc
from voicebot.ua.port import CallAudioPort
from voicebot.ua.spans import UaTracer

log = logs.get_logger(__name__)
HOUSEKEEPING_S = 0.2
GRAVEYARD_S = 2.0


def call_slot(call: Any) -> int:
    try:
        return int(call.getId())
    except Exception:  # not a call, or one pjsua no longer knows
        return -1


def buried(graveyard: list[tuple[float, Any]], now: float, live_ids: set[int]) -> list[tuple[float, Any]]:
    """The graveyard after a purge: objects older than GRAVEYARD_S are dropped, except an ended
    call whose pjsua call id a newer call has taken. pjsua2's Call destructor clears the user data
    of (and hangs up) the call in its slot: dropping the old object while a new call uses the slot
    cut that call off (it lost its callbacks and was hung up; seen when calls followed each other
    within the 2 s). It is dropped once the slot is free again (the main loop is the only thread
    that handles SIP, so nothing takes the slot between this check and the drop)."""
    return [
        (t, obj)
        for t, obj in graveyard
        if now - t < GRAVEYARD_S or (isinstance(obj, VoiceCall) and call_slot(obj) in live_ids)
    ]


# A call worker sends a heartbeat every 0.5 s; silent this long (hung, stopped, stuck in C code), it
# is killed and the call goes on in a fresh worker from its last checkpoint.
CALL_WORKER_SILENCE_S = 2.0
REPLACE_WAIT_S = 15.0  # how long a call may wait for a worker to take it over (spares are used first)
MAX_WORKERS_PER_CALL = 4  # a call that keeps killing its workers is ended (the engine gives up at 2)


class TrunkAccount(pj.Account):  # type: ignore[misc]
    """A SIP account: the default one for IP trunks, or one per registering trunk."""

    def __init__(self, ua: UAWorker, trunk: str) -> None:
        super().__init__()
        self.ua = ua
        self.trunk = trunk

    def onIncomingCall(self, prm: Any) -> None:
        self.ua.on_incoming_call(self, prm)

    def onRegState(self, prm: Any) -> None:
        log.info(
            "sip.registration",
            trunk=self.trunk,
            code=int(prm.code),
            reason=str(prm.reason),
            expiration=int(prm.expiration),
        )


class UAWorker:
    """Owns the endpoint, accounts, calls and the per-call worker pool of one UA worker process."""

    def __init__(self, params: UAParams, params_file: Path, heartbeat: HeartbeatWriter | None = None) -> None:
        self.p = params
        self.heartbeat = heartbeat or HeartbeatWriter(None)
        self.calls: dict[str, CallLeg] = {}  # by voicebot call id
        self.rejected: list[VoiceCall] = []  # kept until DISCONNECTED, then dropped
        # pjsua2 objects of ended calls, dropped outside callbacks and only after GRAVEYARD_S: pjmedia
        # takes a port out of its conference bridge asynchronously (on its clock thread), so freeing
        # the port at once can leave the bridge with a dangling pointer.
        self.graveyard: list[tuple[float, Any]] = []
        # Audio ports of ended calls, reused by later calls once idle GRAVEYARD_S (port.reset)
        self.idle_ports: list[tuple[float, CallAudioPort]] = []
        self.ports_made = 0
        self.draining = False
        self.drain_deadline = 0.0
        self.stop = False
        self.selector = selectors.DefaultSelector()
        self.pool = CallWorkerPool(
            params.pool_size,
            params_file.with_name(f"call-worker-{params.index}.json"),
            max_busy=params.max_calls,
            fork_server=params.fork_server,
            spares=params.spare_workers,
        )
        codecs: list[str] = []
        for trunk in params.trunks:
            codecs += [c for c in trunk.codecs if c not in codecs]
        self.ep, self._keep = create_endpoint(params, codecs or ["PCMU", "PCMA", "G722"])
        self.accounts: list[TrunkAccount] = []
        self.dial_accounts: dict[str, TrunkAccount] = {}  # trunk -> the account its placed calls use
        self.listening = False  # transports and accounts exist: calls may be taken and placed
        dialling = params.outbound and any(t.dial for t in params.trunks)
        self.outbound = Spool(params.run_dir / "outbound").ensure() if dialling else None
        # the calls up now, for the admin console (voicebot/console/live.py)
        self.live = LiveFile(params.run_dir / "live" / f"ua-{params.index}.json", params.index)
        # this process's spans in each call's trace (voicebot/ua/spans.py), when tracing is on
        cw = params.call_worker
        self.tracer = (
            UaTracer(cw.otlp_endpoint, f"{cw.trace_service}-ua", params.index) if cw.otlp_endpoint else None
        )

    # --- setup ---------------------------------------------------------------------------------
    def _create_account(self, trunk: TrunkParams | None) -> TrunkAccount:
        cfg = pj.AccountConfig()
        p = self.p
        if trunk is None:
            cfg.idUri = f"sip:voicebot@{p.advertise}:{p.port}"
        else:
            host = trunk.registrar.split(":", 1)[1].split(";")[0] if trunk.registrar else p.advertise
            cfg.idUri = f"sip:{trunk.username}@{host}"
            cfg.regConfig.registrarUri = trunk.registrar
            cfg.regConfig.timeoutSec = trunk.register_expires_s
            cfg.regConfig.retryIntervalSec = 30
            cred = pj.AuthCredInfo("digest", trunk.realm, trunk.username or "", 0, trunk.password or "")
            cfg.sipConfig.authCreds.append(cred)
        cfg.mediaConfig.transportConfig.port = p.rtp_port_start
        cfg.mediaConfig.transportConfig.portRange = p.rtp_port_range
        cfg.mediaConfig.transportConfig.boundAddress = p.media_listen
        cfg.mediaConfig.transportConfig.publicAddress = p.media_advertise
        srtp_trunks = [t.srtp for t in p.trunks if (trunk is None or t is trunk)]
        cfg.mediaConfig.srtpUse = (
            pj.PJMEDIA_SRTP_OPTIONAL if any(s != "off" for s in srtp_trunks) else pj.PJMEDIA_SRTP_DISABLED
        )
        cfg.mediaConfig.srtpSecureSignaling = 0
        cfg.natConfig.sdpNatRewriteUse = 0
        cfg.natConfig.viaRewriteUse = 0
        cfg.natConfig.contactRewriteUse = 0
        acc = TrunkAccount(self, trunk.name if trunk else "default")
        acc.create(cfg, trunk is None)
        return acc

    def _create_dial_account(self, trunk: TrunkParams) -> TrunkAccount:
        """The account a trunk's placed calls go out from: the trunk's credentials for its digest
        challenge (not registering: the edge or the trunk's own account does that) and, behind this
        node's edge, the edge as outbound proxy (the UA worker listens on loopback there)."""
        p = self.p
        cfg = pj.AccountConfig()
        cfg.idUri = f"sip:{trunk.caller_id or 'voicebot'}@{p.advertise}:{p.port}"
        if p.outbound_proxy:
            cfg.sipConfig.proxies.append(p.outbound_proxy)
        if trunk.username and trunk.password:
            cred = pj.AuthCredInfo("digest", trunk.realm, trunk.username, 0, trunk.password)
            cfg.sipConfig.authCreds.append(cred)
        cfg.mediaConfig.transportConfig.port = p.rtp_port_start
        cfg.mediaConfig.transportConfig.portRange = p.rtp_port_range
        cfg.mediaConfig.transportConfig.boundAddress = p.media_listen
        cfg.mediaConfig.transportConfig.publicAddress = p.media_advertise
        cfg.mediaConfig.srtpUse = (
            pj.PJMEDIA_SRTP_OPTIONAL if trunk.srtp != "off" else pj.PJMEDIA_SRTP_DISABLED
        )
        cfg.mediaConfig.srtpSecureSignaling = 0
        cfg.natConfig.sdpNatRewriteUse = 0
        cfg.natConfig.viaRewriteUse = 0
        cfg.natConfig.contactRewriteUse = 0
        acc = TrunkAccount(self, trunk.name)
        acc.create(cfg, False)
        return acc

    # --- SIP callbacks (main thread) -----------------------------------------------------------
    def on_incoming_call(self, acc: TrunkAccount, prm: Any) -> None:
        raw = str(prm.rdata.wholeMsg)
        start, headers, body = sipmsg.split_message(raw)
        src = source_ip(str(prm.rdata.srcAddress))
        crypto, plain = sipmsg.sdp_offers_srtp(body)
        decision = admit(
            AdmissionInput(
                source=src,
                original_source=headers.get("x-voicebot-source"),
                draining=self.draining,
                active_calls=len(self.calls),
                max_calls=self.p.max_calls,
                offers_crypto=crypto,
                offers_plain=plain,
            ),
            self.p.trunks,
            self.p.behind_edge,
            self.p.edge_sources,
        )
        call = VoiceCall(acc, prm.callId, self.on_call_event)
        sip_call_id = headers.get("call-id", "")
        if not isinstance(decision, Admit):
            log.info(
                "call.rejected", sip_call_id=sip_call_id, source=src, code=decision.code, why=decision.reason
            )
            extra = {"Retry-After": "5"} if decision.code == 503 else None
            answer(call, decision.code, decision.reason.split(":")[0], extra)
            metrics.call_rejected(decision.code)
            self.rejected.append(call)
            return
        callee = sipmsg.called_number(start, headers)
        leg = CallLeg(
            call_id=new_call_id(),
            sip_call_id=sip_call_id,
            caller=sipmsg.uri_user(headers.get("from", "")),
            callee=callee,
            trunk=decision.trunk,
            dialplan=self._route(callee),
            invited_at=time.monotonic(),
            pj_call=call,
        )
        call.leg = leg
        self.calls[leg.call_id] = leg
        leg.log.info("call.incoming", caller=leg.caller, callee=callee, source=src)
        if not self._try_answer(leg):
            answer(call, 180)
            leg.answer_deadline = time.monotonic() + self.p.answer_wait_s

    def _route(self, callee: str) -> str:
        for pattern, dialplan in self.p.routes:
            if fnmatch.fnmatchcase(callee, pattern):
                return dialplan
        return self.p.routes[-1][1] if self.p.routes else ""

    def _try_answer(self, leg: CallLeg) -> bool:
        """Bind a ready call worker and answer 200; False if none is free yet."""
        worker = self.pool.acquire(leg.call_id)
        if worker is None:
            return False
        leg.port = self._audio_port(worker.sock)
        assert leg.pj_call is not None
        # CallStart goes out first: answering can connect the media at once (pjsua calls back inside
        # answer()), and from then on the media thread writes caller audio to the same socket; a
        # worker whose first message is audio gives up on the call (seen at 4 concurrent calls).
        leg.answered_at, leg.answered_wall = time.monotonic(), time.time()
        leg.marks.append(("ua.answer_wait", leg.invited_wall, leg.answered_wall, {}))
        self._attach(leg, worker)
        answer(leg.pj_call, 200)
        leg.log.info(
            "call.answered",
            worker_pid=worker.pid,
            answer_ms=round((leg.answered_at - leg.invited_at) * 1000, 1),
        )
        return True

    def _audio_port(self, sock: Any) -> CallAudioPort:
        """A conference-bridge port for a new call: one idle long enough, else a new one."""
        now = time.monotonic()
        for i, (released, port) in enumerate(self.idle_ports):
            if now - released >= GRAVEYARD_S:
                del self.idle_ports[i]
                port.reset(sock)
                return port
        port = CallAudioPort(sock, self.p.sample_rate)
        port.create(f"call-port-{self.ports_made}")
        self.ports_made += 1
        return port

    def _attach(self, leg: CallLeg, worker: CallWorkerProc) -> None:
        """Hand the call to ``worker``: a new call, or one going on from its checkpoint."""
        leg.worker = worker
        leg.workers += 1
        if leg.worker_lost_wall:  # a new worker takes the call over: the gap without one ends
            leg.marks.append(
                ("ua.no_worker", leg.worker_lost_wall, time.time(), {"voicebot.deaths": leg.deaths})
            )
            leg.worker_lost_wall = 0.0
        leg.last_heard = time.monotonic()
        leg.replace_deadline = None
        self.selector.register(worker.sock, selectors.EVENT_READ, ("call", leg.call_id))
        leg.send(
            proto.CallStart(
                call_id=leg.call_id,
                sip_call_id=leg.sip_call_id,
                caller=leg.caller,
                callee=leg.callee,
                trunk=leg.trunk,
                dialplan=leg.dialplan,
                sample_rate=self.p.sample_rate,
                ua_worker=self.p.index,
                node=self.p.node,
                resume=(leg.checkpoint or "{}") if leg.workers > 1 else None,
                deaths=leg.deaths,
                answered_at=leg.answered_wall,
                invite_ms=round(max(0.0, (leg.answered_at or leg.invited_at) - leg.invited_at) * 1000, 1),
                worker_no=leg.workers,
                direction="outbound" if leg.outbound else "inbound",
                entry=leg.outbound.entry if leg.outbound else "",
                variables=dict(leg.outbound.variables) if leg.outbound else {},
                dial_id=leg.outbound.id if leg.outbound else "",
            )
        )

    def _worker_lost(self, leg: CallLeg, why: str) -> None:
        """The call's worker died or stopped answering: the call goes on in a fresh worker, on the
        same SIP dialog and RTP stream, from its last checkpoint (no BYE, no re-INVITE)."""
        old = leg.worker
        if old is not None:
            self._unregister(old.sock)
            self.pool.discard(old)  # killed if it is still there (hung, stopped)
        leg.worker = None
        leg.deaths += 1
        leg.worker_lost_wall = time.time()
        if leg.workers >= MAX_WORKERS_PER_CALL:
            leg.log.error("call.worker_died", why=why, workers=leg.workers, action="hang up")
            self._fail_call(leg, f"call worker died {leg.workers} times")
            return
        if leg.port is not None:
            leg.port.request_flush()  # the dead worker's queued audio is not the new worker's
        leg.log.error("call.worker_died", why=why, deaths=leg.deaths, action="resume")
        metrics.worker_replaced()
        leg.replace_deadline = time.monotonic() + REPLACE_WAIT_S
        self._replace_worker(leg)

    def _replace_worker(self, leg: CallLeg) -> None:
        worker = self.pool.acquire(leg.call_id)
        if worker is None:
            return  # housekeeping tries again until replace_deadline
        if leg.port is not None:
            leg.port.attach(worker.sock)
        self._attach(leg, worker)
        leg.log.info("call.worker_replaced", worker_pid=worker.pid, deaths=leg.deaths)

    def on_call_event(self, call: VoiceCall, kind: str, data: Any) -> None:
        leg = call.leg
        if kind == "state":
            if leg is not None and leg.outbound is not None and not leg.ended:
                self._outbound_state(leg, data)
            if data.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                if leg is None:
                    if call in self.rejected:
                        self.rejected.remove(call)
                    self.graveyard.append((time.monotonic(), call))
                else:
                    self._end(leg, f"disconnected {data.lastStatusCode} {data.lastReason}")
            return
        if leg is None or leg.ended:
            return
        if kind == "media":
            self._connect_media(leg)
        elif kind == "dtmf":
            digit, method, duration = data
            leg.log.debug("call.dtmf", method=method)  # the digit may be a PIN: never logged here
            leg.send(proto.DtmfReceived(digit=digit, method=method, duration_ms=duration))
        elif kind == "xfer":
            self._on_transfer_status(leg, *data)

    def _connect_media(self, leg: CallLeg) -> None:
        if leg.pj_call is None or leg.port is None or leg.media_connected or leg.answered_at is None:
            return  # a placed call's audio flows once its callee answered and its worker has it
        info = leg.pj_call.getInfo()
        for i, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                aud = leg.pj_call.getAudioMedia(i)
                aud.startTransmit(leg.port)
                leg.port.startTransmit(aud)
                leg.media_connected = True
                leg.last_rx_change = time.monotonic()
                leg.log.info("call.media", codec=self._codec(leg))
                return

    @staticmethod
    def _codec(leg: CallLeg) -> str:
        try:
            assert leg.pj_call is not None
            return str(leg.pj_call.getStreamInfo(0).codecName)
        except pj.Error:
            return "?"

    # --- outbound (voicebot/outbound) ------------------------------------------------------------
    def _poll_outbound(self) -> None:
        """Place one queued call when a slot and a call worker are free (the node's dialer queued it
        within the trunk's limits; the destination policy was checked there)."""
        if self.outbound is None or not self.listening or self.draining or not self.pool.idle:
            return  # not before run() made the accounts: housekeeping runs while the pool starts
        if len(self.calls) >= self.p.max_calls:
            return
        dial = self.outbound.claim(os.getpid(), time.time())
        if dial is not None:
            self._place(dial)

    def _report(self, dial: Dial, state: str, code: int = 0, reason: str = "", call_id: str = "") -> None:
        assert self.outbound is not None
        self.outbound.report(
            Outcome.model_validate(
                {
                    "id": dial.id,
                    "trunk": dial.trunk,
                    "state": state,
                    "code": code,
                    "reason": reason[:200],
                    "call_id": call_id,
                    "pid": os.getpid(),
                }
            )
        )

    def _account(self, trunk: str) -> TrunkAccount:
        return self.dial_accounts.get(trunk) or self.accounts[0]

    def _place(self, dial: Dial) -> None:
        trunk = next((t for t in self.p.trunks if t.name == dial.trunk and t.dial), None)
        if trunk is None or trunk.dial is None:
            log.warning("call.dial_refused", dial=dial.id, trunk=dial.trunk, why="not a dialling trunk here")
            self._report(dial, "failed", 403, "not a dialling trunk of this node")
            return
        # The URI is rebuilt from this node's own trunk settings: the spool file says only which
        # trunk and which (E.164-checked) number, never where the INVITE goes.
        uri = trunk.dial.replace("{number}", dial.number)
        call_id = new_call_id()
        worker = self.pool.acquire(call_id)
        if worker is None:
            self._report(dial, "failed", 503, "no call worker free")
            return
        call = VoiceCall(self._account(dial.trunk), pj.PJSUA_INVALID_ID, self.on_call_event)
        leg = CallLeg(
            call_id=call_id,
            sip_call_id="",
            caller=dial.number,
            callee=dial.caller_id,
            trunk=dial.trunk,
            dialplan=dial.dialplan,
            invited_at=time.monotonic(),
            pj_call=call,
            outbound=dial,
            reserved=worker,
        )
        leg.answer_deadline = leg.invited_at + dial.ring_timeout_s
        leg.port = self._audio_port(worker.sock)
        call.leg = leg
        self.calls[call_id] = leg
        op = pj.CallOpParam(True)
        if dial.caller_id:
            op.txOption.localUri = f"sip:{dial.caller_id}@{self.p.advertise}:{self.p.port}"
        try:
            call.makeCall(uri, op)
            leg.sip_call_id = str(call.getInfo().callIdString)
        except pj.Error as exc:
            leg.log.warning("call.dial_failed", dial=dial.id, error=exc.info())
            self._report(dial, "failed", 500, f"INVITE not sent: {exc.info()}"[:200], call_id)
            leg.ending("failure", "INVITE not sent")
            self._end(leg, "not sent")
            return
        leg.log = leg.log.bind(sip_call_id=leg.sip_call_id)
        leg.log.info("call.dialling", dial=dial.id, entry=dial.entry, ring_timeout_s=dial.ring_timeout_s)
        if not leg.ended:  # a failure inside makeCall was reported already; never overwrite it
            self._report(dial, "ringing", call_id=call_id)

    def _outbound_state(self, leg: CallLeg, info: Any) -> None:
        dial = leg.outbound
        assert dial is not None
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and leg.answered_at is None and leg.end_reason:
            # Answered as our CANCEL (ring timeout, shutdown) crossed it: not an answer, end it.
            leg.log.info("call.answered_too_late", dial=dial.id, why=leg.end_reason)
            if leg.pj_call is not None:
                hangup(leg.pj_call)
        elif info.state == pj.PJSIP_INV_STATE_CONFIRMED and leg.answered_at is None:
            worker, leg.reserved = leg.reserved, None
            if worker is None or worker.closed or worker.proc.poll() is not None:
                leg.log.warning("call.no_worker", why="the placed call's worker died while it rang")
                self._report(dial, "failed", 500, "call worker lost", leg.call_id)
                leg.ending("failure", "no call worker")
                if leg.pj_call is not None:
                    hangup(leg.pj_call)
                return
            leg.answered_at, leg.answered_wall = time.monotonic(), time.time()
            self._attach(leg, worker)
            leg.log.info(
                "call.answered_out",
                dial=dial.id,
                worker_pid=worker.pid,
                ring_ms=round((leg.answered_at - leg.invited_at) * 1000, 1),
            )
            self._report(dial, "answered", 200, "answered", leg.call_id)
            self._connect_media(leg)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if leg.answered_at is None:
                code, reason = int(info.lastStatusCode), str(info.lastReason)
                if leg.end_reason and code < 300:  # answered as we gave up on it: still unanswered
                    code, reason = 408, leg.end_reason
                self._report(dial, "failed", code, reason, leg.call_id)
                leg.log.info("call.not_answered", dial=dial.id, code=code)
            else:
                self._report(dial, "ended", 200, leg.end_reason or "remote hung up", leg.call_id)

    # --- transfer -----------------------------------------------------------------------------
    def _transfer(self, leg: CallLeg, req: proto.TransferRequest) -> None:
        uri = self.p.queues.get(req.queue)
        if uri is None or leg.transfer_queue is not None or leg.pj_call is None:
            why = "unknown queue" if uri is None else "transfer already in progress"
            leg.log.warning("call.transfer_refused", queue=req.queue, why=why)
            leg.send(
                proto.TransferResult(
                    queue=req.queue, ok=False, status=404 if uri is None else 491, reason=why
                )
            )
            return
        leg.transfer_queue = req.queue
        leg.transfer_deadline = time.monotonic() + TRANSFER_TIMEOUT_S
        leg.transfer_wall = time.time()
        op = pj.CallOpParam(True)
        try:
            leg.pj_call.xfer(transfer_target(uri, leg.call_id, req.reason, req.headers), op)
            leg.log.info("call.transfer_started", queue=req.queue)
        except pj.Error as exc:
            leg.log.warning("call.transfer_failed", queue=req.queue, error=exc.info())
            self._transfer_done(leg, 500, "REFER could not be sent")

    def _on_transfer_status(self, leg: CallLeg, code: int, reason: str, final: bool) -> None:
        leg.log.info("call.transfer_status", queue=leg.transfer_queue, code=code, final=final)
        if code >= 200 or final:
            self._transfer_done(leg, code, reason)

    def _transfer_done(self, leg: CallLeg, code: int, reason: str) -> None:
        queue = leg.transfer_queue
        if queue is None:
            return
        ok = 200 <= code < 300
        leg.transfer_queue = None
        if leg.transfer_wall:
            attrs = {"voicebot.queue": queue, "sip.status_code": code, "sip.reason": reason[:200]}
            leg.marks.append(("ua.transfer", leg.transfer_wall, time.time(), attrs))
            leg.transfer_wall = 0.0
        leg.send(proto.TransferResult(queue=queue, ok=ok, status=code, reason=reason))
        leg.log.info("call.transferred" if ok else "call.transfer_failed", queue=queue, code=code)
        if not ok:
            metrics.stage_failed("transfer")
        if ok and leg.pj_call is not None:
            leg.ending("transfer", f"transferred to {queue}")
            hangup(leg.pj_call)

    # --- IPC from call workers -----------------------------------------------------------------
    def _poll_ipc(self) -> None:
        for key, _ in self.selector.select(0):
            kind, ref = key.data
            if kind != "call":
                self._read_starting(key.fileobj)
                continue
            try:
                self._read_worker(ref, key.fileobj)
            except Exception:
                # One call's broken message or state must not take the loop (and every other call
                # of this process) down with it: that call ends, the rest go on.
                log.exception("ua.call_error", call_id=ref)
                self._unregister(key.fileobj)
                leg = self.calls.get(ref)
                if leg is not None and not leg.ended:
                    self._fail_call(leg, "internal error")

    def _unregister(self, sock: Any) -> None:
        """Stop watching a call worker's socket; it may already be gone (closed when its call ended)."""
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)

    def _read_starting(self, sock: Any) -> None:
        worker = next((w for w in self.pool.starting if w.sock is sock), None)
        try:
            data = sock.recv(proto.MAX_MESSAGE + 1)
            msg = proto.decode(data) if data else None
        except (OSError, ProtocolError):
            msg = None
        self._unregister(sock)
        if worker is None:
            return
        if isinstance(msg, proto.WorkerReady):
            self.pool.mark_ready(worker)
            self._answer_waiting()
        else:
            self.pool.discard(worker)

    def _read_worker(self, call_id: str, sock: Any) -> None:
        leg = self.calls.get(call_id)
        for _ in range(64):  # bounded: one chatty worker must not starve SIP
            # A message just applied may have ended the call (a bot hang-up is carried out at once,
            # and pjsua2 reports DISCONNECTED inside hangup()): the socket is closed then.
            if sock.fileno() < 0 or (leg is not None and leg.ended):
                return
            try:
                data = sock.recv(proto.MAX_MESSAGE + 1)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._unregister(sock)
                if leg is not None and not leg.ended and leg.worker is not None and leg.worker.sock is sock:
                    self._worker_lost(leg, "its socket closed (the process died)")
                return
            if leg is None:
                continue
            leg.last_heard = time.monotonic()
            try:
                msg = proto.decode(data)
            except ProtocolError as exc:
                leg.log.warning("ipc.bad_message", error=str(exc))
                continue
            self._apply(leg, msg)

    def _apply(self, leg: CallLeg, msg: proto.Control | bytes) -> None:
        if leg.ended or leg.port is None:
            return
        if isinstance(msg, bytes):
            leg.port.enqueue_audio(msg)
        elif isinstance(msg, proto.Mark):
            # Tagged with the worker that queued it: after a worker is replaced, the marks of the old
            # one's flushed audio are not the new one's business.
            leg.port.enqueue_mark(f"{leg.workers}|{msg.mark}")
        elif isinstance(msg, proto.Flush):
            leg.port.request_flush()  # carried out by the media thread; dropped marks come back
        elif isinstance(msg, proto.Heartbeat):
            pass  # any message counts (last_heard)
        elif isinstance(msg, proto.Checkpoint):
            leg.checkpoint = msg.state
            if msg.progress > leg.progress:  # the call moved on: earlier deaths are forgiven
                leg.progress, leg.deaths = msg.progress, 0
        elif isinstance(msg, proto.TransferRequest):
            self._transfer(leg, msg)
        elif isinstance(msg, proto.TurnMetrics):
            metrics.observe_turn(msg.model_dump())
        elif isinstance(msg, proto.StageFailed):
            metrics.stage_failed(msg.stage)
        elif isinstance(msg, proto.HangupRequest):
            leg.log.info("call.hangup_requested", why=msg.reason)
            leg.ending("bot", f"bot hung up: {msg.reason}")
            if leg.pj_call is not None:
                hangup(leg.pj_call)
        else:
            leg.log.warning("ipc.unexpected", type=msg.type)

    def _fail_call(self, leg: CallLeg, why: str) -> None:
        """The bot side of a call broke: end the caller's leg honestly rather than leave silence."""
        self._terminate(leg, "failure", why, 500, "Server Internal Error")

    @staticmethod
    def _terminate(leg: CallLeg, cause: EndCause, why: str, code: int, phrase: str) -> None:
        """End the caller's leg from our side: a final ``code`` if it was never answered, else BYE
        (a call we placed that still rings is cancelled: hangup sends CANCEL)."""
        leg.ending(cause, why)
        if leg.pj_call is not None:
            if leg.answered_at is None and leg.outbound is None:
                answer(leg.pj_call, code, phrase)
            else:
                hangup(leg.pj_call)

    # --- call end -------------------------------------------------------------------------------
    def _end(self, leg: CallLeg, status: str) -> None:
        if leg.ended:
            return
        leg.ended = True
        reason = leg.end_reason or f"remote: {status}"
        metrics.call_ended(leg.ended_by)
        leg.send(proto.CallEnded(reason=reason))
        if leg.worker is not None:
            self._unregister(leg.worker.sock)
        if leg.reserved is not None:
            self.pool.unreserve(leg.call_id)  # a placed call never answered: its worker stays warm
        else:
            self.pool.release(leg.call_id)
        leg.reserved = None
        self.calls.pop(leg.call_id, None)
        duration = time.monotonic() - (leg.answered_at or leg.invited_at)
        leg.log.info(
            "call.ended",
            reason=reason,
            duration_s=round(duration, 2),
            frames_out=leg.port.stats.frames_out if leg.port else 0,
            underruns=leg.port.stats.underruns if leg.port else 0,
        )
        if leg.port is not None:
            metrics.playout_gaps(leg.port.stats.underruns)
        if self.tracer is not None:
            self.tracer.leg_ended(leg, time.time(), reason)
        if leg.port is not None:  # kept for a later call, never freed while the endpoint runs
            self.idle_ports.append((time.monotonic(), leg.port))
        self.graveyard.append((time.monotonic(), leg.pj_call))
        leg.port = None
        if leg.pj_call is not None:
            leg.pj_call.leg = None
        leg.pj_call = None

    # --- housekeeping ---------------------------------------------------------------------------
    def _answer_waiting(self) -> None:
        for leg in list(self.calls.values()):
            waiting = leg.answered_at is None and not leg.ended and leg.outbound is None
            if waiting and not self._try_answer(leg):
                return

    def _housekeeping(self, now: float) -> None:
        for worker in self.pool.reap():
            # Closed by the pool: unwatch it now, or the next socket that gets the same descriptor
            # number cannot be registered (KeyError: "already registered", which crashed the loop).
            self._unregister(worker.sock)
        for worker in self.pool.fill():
            self.selector.register(worker.sock, selectors.EVENT_READ, ("starting", worker.pid))
        for leg in list(self.calls.values()):
            self._check_leg(leg, now)
        self._poll_outbound()
        self.graveyard = buried(self.graveyard, now, self._live_call_ids())
        metrics.ua_load(len(self.calls), self._free_slots(), len(self.pool.idle))
        self.live.update(self._live_calls())

    def _live_calls(self) -> list[dict[str, Any]]:
        return [
            {
                "call_id": leg.call_id,
                "caller": leg.caller,
                "callee": leg.callee,
                "trunk": leg.trunk,
                "dialplan": leg.dialplan.rsplit("/", 1)[-1],
                "state": live.leg_state(
                    leg.answered_at is not None,
                    leg.outbound is not None,
                    leg.transfer_queue is not None,
                    leg.ended,
                ),
                "queue": leg.transfer_queue or "",
                "started": round(leg.invited_wall, 3),
                "workers": leg.workers,
            }
            for leg in self.calls.values()
        ]

    def _live_call_ids(self) -> set[int]:
        """pjsua call ids of the calls still up (answered, ringing, or being rejected)."""
        calls = [leg.pj_call for leg in self.calls.values() if leg.pj_call is not None] + self.rejected
        return {call_slot(c) for c in calls}

    def _free_slots(self) -> int:
        return 0 if self.draining else max(0, self.p.max_calls - len(self.calls))

    def _check_leg(self, leg: CallLeg, now: float) -> None:
        if leg.ended or leg.pj_call is None:
            return
        if leg.answered_at is None and leg.outbound is not None:
            if now > leg.answer_deadline and not leg.end_reason:
                leg.log.info("call.ring_timeout", dial=leg.outbound.id)
                leg.ending("bot", "no answer")
                hangup(leg.pj_call, 408, "No Answer")  # CANCEL; DISCONNECTED reports the outcome
            return
        if leg.answered_at is None:
            if now > leg.answer_deadline:
                leg.log.warning("call.no_worker", why="no call worker became free in time")
                leg.ending("failure", "no call worker")
                answer(leg.pj_call, 503, "Service Unavailable", {"Retry-After": "5"})
                metrics.call_rejected(503)
            return
        if leg.worker is None and leg.replace_deadline is not None:
            if now > leg.replace_deadline:
                leg.log.error("call.no_worker", why="no call worker became free to take the call over")
                self._fail_call(leg, "no call worker to take over")
                return
            self._replace_worker(leg)
        elif leg.worker is not None and now - leg.last_heard > CALL_WORKER_SILENCE_S:
            self._worker_lost(leg, f"no message for {now - leg.last_heard:.1f} s (hung or stopped)")
        if leg.transfer_queue is not None and now > leg.transfer_deadline:
            self._transfer_done(leg, 408, "no final NOTIFY in time")
        rx = leg.rx_packets()
        if rx != leg.last_rx_packets:
            leg.last_rx_packets, leg.last_rx_change = rx, now
        elif leg.media_connected and now - leg.last_rx_change > self.p.rtp_timeout_s:
            leg.log.warning("call.rtp_timeout", silent_s=round(now - leg.last_rx_change, 1))
            leg.ending("rtp_timeout", "no RTP from caller")
            hangup(leg.pj_call)

    def _marks(self) -> None:
        for leg in self.calls.values():
            port = leg.port
            if port is None:
                continue
            while port.stats.marks:
                owner, _, mark = port.stats.marks.popleft().partition("|")
                if owner == str(leg.workers):
                    leg.send(proto.PlayedMark(mark=mark))
            while port.stats.dropped:
                owner, _, mark = port.stats.dropped.popleft().partition("|")
                if owner == str(leg.workers):
                    leg.send(proto.DroppedMark(mark=mark))

    # --- run / drain / shutdown -------------------------------------------------------------------
    def request_drain(self, *_: Any) -> None:
        if not self.draining:
            self.draining = True
            self.drain_deadline = time.monotonic() + self.p.drain_timeout_s
            self.heartbeat.ready(False, time.monotonic())
            log.info("ua.draining", active_calls=len(self.calls), timeout_s=self.p.drain_timeout_s)

    def _wait_for_pool(self, timeout: float) -> None:
        """Pre-start the call workers before we listen: the first calls must not wait for a spawn."""
        deadline = time.monotonic() + timeout
        # As many as fill() starts: a pool larger than the call slots (+ spares) is never all idle, and
        # waiting for it cost a minute at every start (calls_per_ua 2 with call_pool_size 4).
        while len(self.pool.idle) < self.pool.wanted() and time.monotonic() < deadline and not self.draining:
            self.heartbeat.beat(time.monotonic())
            self.ep.libHandleEvents(10)
            self._poll_ipc()
            self._housekeeping(time.monotonic())
        if len(self.pool.idle) < self.pool.wanted():
            log.warning("ua.pool_slow", ready=len(self.pool.idle), wanted=self.pool.wanted())

    def run(self) -> None:
        self._wait_for_pool(timeout=60.0)
        self._keep += open_transports(self.ep, self.p)
        self.accounts = [self._create_account(None)] + [
            self._create_account(t) for t in self.p.trunks if t.registrar
        ]
        if self.outbound is not None:
            self.dial_accounts = {t.name: self._create_dial_account(t) for t in self.p.trunks if t.dial}
        self.listening = True
        log.info("ua.ready", index=self.p.index, port=self.p.port, pool=len(self.pool.idle))
        # Free slots first: the supervisor must never see this worker ready with none.
        free = self._free_slots()
        self.heartbeat.free(free, time.monotonic())
        self.heartbeat.ready(not self.draining, time.monotonic())
        next_housekeeping = 0.0
        while True:
            self.ep.libHandleEvents(5)
            self._poll_ipc()
            self._marks()
            now = time.monotonic()
            slots = self._free_slots()
            if slots != free:  # the supervisor's /readyz
                free = slots
                self.heartbeat.free(slots, now)
            self.heartbeat.beat(now)
            if now >= next_housekeeping:
                self._housekeeping(now)
                next_housekeeping = now + HOUSEKEEPING_S
            if self.draining:
                if not self.calls:
                    break
                if now > self.drain_deadline:
                    self._hangup_all("drain deadline")
                    break
        self.shutdown()

    def _hangup_all(self, why: str) -> None:
        for leg in list(self.calls.values()):
            self._terminate(leg, "shutdown", why, 503, "Service Unavailable")

    def shutdown(self) -> None:
        """Controlled order: BYE everything, let transactions finish, drop Calls, then destroy."""
        self._hangup_all("shutdown")
        deadline = time.monotonic() + 5.0
        while (self.calls or self.rejected) and time.monotonic() < deadline:
            self.heartbeat.beat(time.monotonic())
            self.ep.libHandleEvents(20)
        self.live.update([])
        if self.tracer is not None:
            with contextlib.suppress(Exception):  # a collector that is away must not stop the shutdown
                self.tracer.close()
        for acc in [*self.accounts, *self.dial_accounts.values()]:
            acc.shutdown()
        # Let BYE/200 and un-REGISTER transactions complete: libDestroy with transactions in
        # flight segfaults 2.15.1.
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            self.heartbeat.beat(time.monotonic())
            self.ep.libHandleEvents(20)
        self.pool.close()
        self.graveyard.clear()
        self.idle_ports.clear()
        self.calls.clear()
        self.rejected.clear()
        self.accounts.clear()
        self.dial_accounts.clear()
        self.ep.libDestroy()
        log.info("ua.stopped", index=self.p.index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicebot-ua-worker")
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--heartbeat-fd", type=int, default=None)
    args = parser.parse_args(argv)
    die_with_parent(signal.SIGTERM)  # supervisor gone: drain and exit rather than linger
    faulthandler.enable()  # a crash inside pjsua2 leaves the Python stack that led to it in the log
    # pjmedia's clock thread needs the GIL for every 20 ms frame callback; the default 5 ms switch
    # interval would let the main loop's Python work delay it by up to 5 ms each time.
    sys.setswitchinterval(0.0005)
    params = UAParams.model_validate_json(args.params.read_text())
    logs.configure(params.log_level, params.log_format, params.redact_pii, process=f"ua{params.index}")
    ua = UAWorker(params, args.params, HeartbeatWriter(args.heartbeat_fd))
    signal.signal(signal.SIGTERM, ua.request_drain)
    signal.signal(signal.SIGINT, ua.request_drain)
    try:
        ua.run()
    except Exception:
        # pjsua2's own threads would keep a process whose loop died alive and deaf; exit instead so
        # that the supervisor restarts it (its calls' RTP stops; the edge stops sending it INVITEs).
        log.exception("ua.crashed", index=params.index)
        sys.stderr.flush()
        os._exit(70)
    return 0


if __name__ == "__main__":
    sys.exit(main())
