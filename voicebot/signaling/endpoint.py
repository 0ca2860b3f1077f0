"""Creating and destroying the pjsua2 endpoint of a UA worker.

threadCnt=0: SIP events are polled from the worker's main loop (``libHandleEvents``), which releases
the GIL while it waits. Media runs on pjmedia's own clock thread with the null sound device, so RTP
pacing never depends on Python's scheduling.
"""

from __future__ import annotations

from typing import Any

import pjsua2 as pj

from voicebot.logs import get_logger
from voicebot.signaling.params import UAParams

log = get_logger(__name__)

# Codecs we offer, best first; everything else (speex, iLBC, GSM, L16) is disabled because speex
# would otherwise outrank PCMU in pjsua2's defaults.
CODEC_IDS = {"PCMU": "PCMU/8000/1", "PCMA": "PCMA/8000/1", "G722": "G722/16000/1"}
TELEPHONE_EVENT_PT = 101


class _LogWriter(pj.LogWriter):  # type: ignore[misc]
    """Route pjsip's own log lines into structlog (warnings and errors only by default)."""

    def write(self, entry: Any) -> None:
        msg = str(entry.msg).strip()
        if msg:
            log.info("pjsip.log", level=entry.level, msg=msg[:500])


def create_endpoint(p: UAParams, codecs: list[str]) -> tuple[pj.Endpoint, list[Any]]:
    """Create, configure and start the endpoint (not yet listening); return it and objects to keep."""
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = p.max_calls
    cfg.uaConfig.userAgent = p.user_agent
    cfg.medConfig.clockRate = p.sample_rate
    cfg.medConfig.sndClockRate = p.sample_rate
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    cfg.medConfig.threadCnt = 1
    writer = _LogWriter()
    cfg.logConfig.writer = writer
    cfg.logConfig.level = 2
    cfg.logConfig.consoleLevel = 2
    cfg.logConfig.decor = 0
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    ep.libStart()
    _set_codec_priorities(ep, codecs)
    return ep, [writer]


def open_transports(ep: pj.Endpoint, p: UAParams) -> list[int]:
    """Start listening; done only once the call-worker pool is ready, so no early call waits."""
    return [_create_transport(ep, p, transport) for transport in p.transports]


def _create_transport(ep: pj.Endpoint, p: UAParams, transport: str) -> int:
    tc = pj.TransportConfig()
    tc.boundAddress = p.listen
    tc.publicAddress = p.advertise
    if transport == "tls":
        tc.port = p.tls_port
        tc.tlsConfig.certFile = str(p.tls_cert or "")
        tc.tlsConfig.privKeyFile = str(p.tls_key or "")
        tc.tlsConfig.CaListFile = str(p.tls_ca or "")
        tc.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
        kind = pj.PJSIP_TRANSPORT_TLS
    else:
        tc.port = p.port
        kind = pj.PJSIP_TRANSPORT_UDP if transport == "udp" else pj.PJSIP_TRANSPORT_TCP
    tid = ep.transportCreate(kind, tc)
    log.info("sip.listening", transport=transport, host=p.listen, port=tc.port)
    return int(tid)


def _set_codec_priorities(ep: pj.Endpoint, wanted: list[str]) -> None:
    order = {CODEC_IDS[name]: 255 - i for i, name in enumerate(wanted) if name in CODEC_IDS}
    for info in ep.codecEnum2():
        ep.codecSetPriority(info.codecId, order.get(info.codecId, 0))
