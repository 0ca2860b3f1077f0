"""Settings + the UA workers' parameters -> the edge's parameters (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from voicebot.config import Settings
from voicebot.edge.params import Backend, EdgeParams, Registration
from voicebot.signaling.params import UAParams


def edge_params(s: Settings, run_dir: Path, uas: Sequence[UAParams], dynamic: bool = False) -> EdgeParams:
    """This node's edge in front of ``uas``; or (``dynamic``) the shared edge of ``voicebot edge``,
    whose backends are the UA workers the nodes announce in the database."""
    allow: list[str] = []
    for trunk in s.trunks:
        allow += [c for c in trunk.allow if c not in allow]
    return EdgeParams(
        listen=s.sip.listen,
        advertise=s.sip.advertise,
        port=s.sip.port,
        transports=tuple(s.sip.transports),
        tls_port=s.sip.tls.port,
        tls_cert=s.sip.tls.cert_file,
        tls_key=s.sip.tls.key_file,
        backends=tuple(Backend(host=ua.listen, port=ua.port, max_calls=ua.max_calls) for ua in uas),
        trunk_allow=tuple(allow),
        pike_reqs_per_interval=s.edge.pike_reqs_per_interval,
        pike_interval_s=s.edge.pike_interval_s,
        scanner_user_agents=tuple(s.edge.scanner_user_agents),
        probe_interval_s=s.edge.probe_interval_s,
        run_dir=run_dir,
        kamailio_bin=s.edge.kamailio_bin,
        kamcmd_bin=s.edge.kamcmd_bin,
        max_message_bytes=s.sip.max_message_bytes,
        # Behind the edge the trunks register once, from the edge's address (UA workers do not).
        dynamic=dynamic,
        registrations=tuple(
            Registration(
                name=t.name,
                registrar=t.registrar,
                username=t.username or "",
                password=t.password.get_secret_value() if t.password else "",
                realm="" if t.realm == "*" else t.realm,
                expires_s=t.register_expires_s,
            )
            for t in s.trunks
            if t.registrar
        ),
        dial_targets=tuple(dial_target(t.dial) for t in s.trunks if t.dial and s.outbound.enabled),
        dial_ring_ms=int((s.outbound.ring_timeout_s + 5) * 1000),
    )


def dial_target(dial: str) -> tuple[str, int | None]:
    """(host, port or None) of a trunk's `dial` URI (sip:{number}@host[:port][;params])."""
    hostport = dial.split("@", 1)[1].split(";", 1)[0]
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, _, port = hostport.partition(":")
    return host, int(port) if port else None
