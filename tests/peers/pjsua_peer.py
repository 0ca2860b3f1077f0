"""A real pjsua2 SIP peer for integration tests (one process per peer: one Endpoint per process).

caller mode: place a call, play a WAV, record what the bot says, send DTMF (RFC 4733 or SIP INFO)
at given times, follow a REFER like a phone would, and report what happened as JSON.
queue mode: act as a human queue: answer INVITEs, keep their headers, record, report as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

events: list[dict[str, Any]] = []
T0 = time.monotonic()


def ev(kind: str, **data: Any) -> None:
    events.append({"t": round(time.monotonic() - T0, 3), "kind": kind, **data})


class PeerCall(pj.Call):  # type: ignore[misc]
    def __init__(self, acc: pj.Account, call_id: int = pj.PJSUA_INVALID_ID, label: str = "main") -> None:
        super().__init__(acc, call_id)
        self.label = label
        self.state = ""
        self.last_code = 0
        self.confirmed_at: float | None = None
        self.disconnected = False
        self.media: Any = None
        self.recorder: pj.AudioMediaRecorder | None = None
        self.player: pj.AudioMediaPlayer | None = None
        self.record_path: str | None = None
        self.play_path: str | None = None
        self.play_at = 0.0
        self.refer_to: str | None = None
        self.new_call: PeerCall | None = None
        self.acc = acc

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        self.state = info.stateText
        self.last_code = int(info.lastStatusCode)
        ev("state", call=self.label, state=info.stateText, code=self.last_code)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed_at = time.monotonic()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for i, m in enumerate(info.media):
            if (
                m.type == pj.PJMEDIA_TYPE_AUDIO
                and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                and self.media is None
            ):
                self.media = self.getAudioMedia(i)
                if self.record_path:
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(self.record_path)
                    self.media.startTransmit(self.recorder)
                if self.play_path and self.play_at <= 0:
                    self.start_player()
                else:
                    # Like a phone, always send audio (silence from the null device): pjmedia only
                    # emits RTP, and so RFC 4733 digits, for a stream that something feeds.
                    pj.Endpoint.instance().audDevManager().getCaptureDevMedia().startTransmit(self.media)
                try:
                    codec = self.getStreamInfo(i).codecName
                except pj.Error:
                    codec = "?"
                ev("media", call=self.label, codec=codec)

    def start_player(self) -> None:
        self.player = pj.AudioMediaPlayer()
        self.player.createPlayer(self.play_path, pj.PJMEDIA_FILE_NO_LOOP)
        self.player.startTransmit(self.media)
        ev("play_started", call=self.label)

    def onCallTransferRequest(self, prm: Any) -> None:
        self.refer_to = str(prm.dstUri)
        ev("refer", call=self.label, refer_to=self.refer_to)
        prm.statusCode = 202
        self.new_call = PeerCall(self.acc, label="transferred")
        prm.newCall = self.new_call

    def onCallTransferStatus(self, prm: Any) -> None:
        ev("xfer_status", call=self.label, code=int(prm.statusCode))

    def onDtmfDigit(self, prm: Any) -> None:
        ev("dtmf_rx", call=self.label, digit=str(prm.digit))


class QueueAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, record_dir: str | None, answer_code: int, ring_s: float = 0.0) -> None:
        super().__init__()
        self.calls: list[PeerCall] = []
        self.record_dir = record_dir
        self.answer_code = answer_code
        self.ring_s = ring_s  # ring (180) this long before the final answer
        self.ringing: dict[int, float] = {}  # index in calls -> when to answer

    def onIncomingCall(self, prm: Any) -> None:
        call = PeerCall(self, prm.callId, label=f"queue{len(self.calls)}")
        raw = str(prm.rdata.wholeMsg)
        head = raw.split("\r\n\r\n", 1)[0]
        ev(
            "invite",
            wall=time.time(),
            request_line=head.split("\r\n", 1)[0],
            headers=[
                h
                for h in head.split("\r\n")[1:]
                if h.lower().startswith(("x-", "to:", "from:", "record-route:", "route:", "via:"))
            ],
        )
        if self.record_dir:
            call.record_path = str(Path(self.record_dir) / f"queue{len(self.calls)}.wav")
        self.calls.append(call)
        if self.ring_s > 0:
            op = pj.CallOpParam(True)
            op.statusCode = 180
            call.answer(op)
            self.ringing[len(self.calls) - 1] = time.monotonic() + self.ring_s
            return
        op = pj.CallOpParam(True)
        op.statusCode = self.answer_code
        call.answer(op)

    def answer_due(self) -> None:
        for i, at in list(self.ringing.items()):
            if time.monotonic() >= at:
                del self.ringing[i]
                if not self.calls[i].disconnected:
                    op = pj.CallOpParam(True)
                    op.statusCode = self.answer_code
                    self.calls[i].answer(op)


def rms_of(path: str | None) -> float:
    if not path or not Path(path).exists():
        return 0.0
    with wave.open(path) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(pcm**2))) if pcm.size else 0.0


def make_endpoint(port: int, transport: str, cert: str | None, key: str | None) -> pj.Endpoint:
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "voicebot-test-peer"
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    tc = pj.TransportConfig()
    tc.port = port
    tc.boundAddress = "127.0.0.1"
    kinds = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP, "tls": pj.PJSIP_TRANSPORT_TLS}
    if transport == "tls":
        tc.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
        if cert and key:
            tc.tlsConfig.certFile = cert
            tc.tlsConfig.privKeyFile = key
    ep.transportCreate(kinds[transport], tc)
    if transport != "udp":
        tc2 = pj.TransportConfig()
        tc2.port = 0
        tc2.boundAddress = "127.0.0.1"
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc2)
    ep.libStart()
    for info in ep.codecEnum2():
        prio = {"PCMU/8000/1": 255, "PCMA/8000/1": 254, "G722/16000/1": 253}.get(info.codecId, 0)
        ep.codecSetPriority(info.codecId, prio)
    return ep


def account_config(args: argparse.Namespace, uri: str) -> pj.AccountConfig:
    cfg = pj.AccountConfig()
    cfg.idUri = uri
    cfg.mediaConfig.transportConfig.port = args.rtp_port
    cfg.mediaConfig.transportConfig.portRange = 50
    cfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    srtp = {
        "off": pj.PJMEDIA_SRTP_DISABLED,
        "optional": pj.PJMEDIA_SRTP_OPTIONAL,
        "mandatory": pj.PJMEDIA_SRTP_MANDATORY,
    }[args.srtp]
    cfg.mediaConfig.srtpUse = srtp
    cfg.mediaConfig.srtpSecureSignaling = 0
    return cfg


def run_caller(args: argparse.Namespace, ep: pj.Endpoint) -> dict[str, Any]:
    acc = pj.Account()
    acc.create(account_config(args, f"sip:caller@127.0.0.1:{args.port}"))
    call = PeerCall(acc)
    call.record_path = args.record
    call.play_path = args.play
    call.play_at = args.play_at
    again_at = args.play_again_at
    op = pj.CallOpParam(True)
    target = args.target + (f";transport={args.transport}" if args.transport != "udp" else "")
    call.makeCall(target, op)
    dtmf = [(float(t), d) for t, d in (item.split("@")[::-1] for item in args.dtmf)] if args.dtmf else []
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        ep.libHandleEvents(10)
        since = time.monotonic() - call.confirmed_at if call.confirmed_at is not None else -1.0
        if call.play_path and call.player is None and call.media is not None and since >= call.play_at > 0:
            call.start_player()
        if again_at and call.player is not None and since >= again_at:
            again_at = 0.0
            call.start_player()  # a new player: the first one has played to its end
        if call.confirmed_at is not None and dtmf and since >= dtmf[0][0]:
            _, digits = dtmf.pop(0)
            send_dtmf(call, digits, args.dtmf_method)
        if call.disconnected and (call.new_call is None or call.new_call.disconnected or args.stop_on_bye):
            break
    result = {
        "final_code": call.last_code,
        "confirmed": call.confirmed_at is not None,
        "disconnected_by_remote": call.disconnected,
        "refer_to": call.refer_to,
        "transferred_state": call.new_call.state if call.new_call else None,
        "transferred_code": call.new_call.last_code if call.new_call else None,
    }
    for c in [call, call.new_call]:
        if c is not None and not c.disconnected:
            with contextlib.suppress(pj.Error):
                c.hangup(pj.CallOpParam(True))
    settle(ep, [call, call.new_call])
    for c in [call, call.new_call]:
        if c is not None:
            c.recorder = c.player = None  # closing the recorder writes the WAV header
    call.new_call = None
    del call
    acc.shutdown()
    return result


def send_dtmf(call: PeerCall, digits: str, method: str) -> None:
    prm = pj.CallSendDtmfParam()
    prm.digits = digits
    prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO if method == "info" else pj.PJSUA_DTMF_METHOD_RFC2833
    call.sendDtmf(prm)
    ev("dtmf_tx", digits=digits, method=method)


def settle(ep: pj.Endpoint, calls: list[PeerCall | None], seconds: float = 1.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ep.libHandleEvents(10)
        if all(c is None or c.disconnected for c in calls):
            break
    for _ in range(20):
        ep.libHandleEvents(10)


def run_queue(args: argparse.Namespace, ep: pj.Endpoint) -> dict[str, Any]:
    acc = QueueAccount(args.record_dir, args.answer_code, args.ring_s)
    acc.create(account_config(args, f"sip:queue@127.0.0.1:{args.port}"), True)
    ready = Path(args.out).with_suffix(".ready")
    ready.write_text("ready")
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        ep.libHandleEvents(10)
        acc.answer_due()
        for c in acc.calls:
            if c.confirmed_at and not c.disconnected and time.monotonic() - c.confirmed_at > args.hold:
                c.hangup(pj.CallOpParam(True))
        if args.max_calls and len(acc.calls) >= args.max_calls and all(c.disconnected for c in acc.calls):
            break
    for c in acc.calls:
        if not c.disconnected:
            c.hangup(pj.CallOpParam(True))
    settle(ep, list(acc.calls))
    for c in acc.calls:
        c.recorder = c.player = None
    result: dict[str, Any] = {
        "calls": len(acc.calls),
        "recordings": [c.record_path for c in acc.calls],
    }
    acc.calls.clear()
    acc.shutdown()
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["caller", "queue"])
    ap.add_argument("--target", default="")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--rtp-port", type=int, default=40000)
    ap.add_argument("--transport", default="udp", choices=["udp", "tcp", "tls"])
    ap.add_argument("--srtp", default="off", choices=["off", "optional", "mandatory"])
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--play")
    ap.add_argument("--play-at", type=float, default=0.0, help="start playing this long after answer")
    ap.add_argument("--play-again-at", type=float, default=0.0, help="play the file once more then")
    ap.add_argument("--record")
    ap.add_argument("--record-dir")
    ap.add_argument("--dtmf", nargs="*", help="DIGITS@SECONDS after answer")
    ap.add_argument("--dtmf-method", default="rfc4733", choices=["rfc4733", "info"])
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--hold", type=float, default=2.0)
    ap.add_argument("--answer-code", type=int, default=200)
    ap.add_argument("--max-calls", type=int, default=0)
    ap.add_argument("--ring-s", type=float, default=0.0, help="queue: ring this long, then answer")
    ap.add_argument("--stop-on-bye", action="store_true")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    ep = make_endpoint(args.port, args.transport, args.cert, args.key)
    result = run_caller(args, ep) if args.mode == "caller" else run_queue(args, ep)
    ep.libDestroy()  # closes recorders, which writes their WAV headers
    if args.mode == "caller":
        result["recording_rms"] = rms_of(args.record)
    else:
        result["recording_rms"] = [rms_of(p) for p in result.pop("recordings")]
    result["events"] = events
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
