"""Parameter objects for the SIP edge (Kamailio in front of the UA workers).

The supervisor builds one :class:`EdgeParams` from the settings; nothing in ``voicebot.edge`` reads
global settings. :func:`validate` rejects values that would otherwise produce a Kamailio config that
fails late (at ``kamailio -c``) or, worse, one that parses but means something else.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from voicebot.errors import ConfigError

TRANSPORTS = ("udp", "tcp", "tls")

# Substrings seen in the User-Agent of SIP scanners (sipvicious & co.); the supervisor may pass its own.
DEFAULT_SCANNER_USER_AGENTS: tuple[str, ...] = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "VaxSIPUserAgent",
    "sundayddr",
    "iWar",
    "SIPBomber",
    "pplsip",
)

# Scanner substrings end up inside a POSIX regex in the generated config; a restricted alphabet keeps
# them literal without an escaping layer that Kamailio's string parser and regex engine would share.
_SAFE_UA = re.compile(r"^[A-Za-z0-9 ._/-]+$")
# A UNIX socket path longer than sun_path (108 bytes incl. NUL) makes the ctl module fail at startup.
_MAX_SOCKET_PATH = 100
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Backend:
    """A UA worker's internal SIP address (UDP)."""

    host: str
    port: int
    # pjsua2-python is built with PJSUA_MAX_CALLS=4; the dispatcher stops selecting a full worker.
    max_calls: int = 4


@dataclass(frozen=True)
class Registration:
    """A trunk the edge registers with, once for the whole node (Kamailio's uac module)."""

    name: str
    registrar: str  # sip:host[:port][;transport=...]
    username: str
    password: str = field(repr=False)  # written only to the edge's private uacreg table
    realm: str = ""  # "" = whatever realm the registrar challenges with
    expires_s: int = 300

    @property
    def registrar_host(self) -> str:
        rest = self.registrar.split(":", 1)[1] if ":" in self.registrar else self.registrar
        host = rest.split(";")[0]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@dataclass(frozen=True)
class EdgeParams:
    """Everything needed to render and run one Kamailio edge."""

    listen: str
    advertise: str
    port: int
    transports: tuple[str, ...]
    tls_port: int
    tls_cert: Path | None
    tls_key: Path | None
    backends: tuple[Backend, ...]
    trunk_allow: tuple[str, ...]
    pike_reqs_per_interval: int
    pike_interval_s: int
    scanner_user_agents: tuple[str, ...]
    probe_interval_s: int
    run_dir: Path
    kamailio_bin: str = "/usr/sbin/kamailio"
    kamcmd_bin: str = "/usr/sbin/kamcmd"
    max_message_bytes: int = 8192
    # Also apply the pike flood limit to allowlisted trunk sources (by default only to everyone else).
    pike_trunks: bool = False
    # Time to the first provisional reply before a backend counts as dead (408 -> next backend).
    fr_timer_ms: int = 1000
    # Time from the first provisional reply to the final one; the bot auto-answers, so keep it short.
    fr_inv_timer_ms: int = 10000
    # "call-load" (dispatcher algorithm 10, honours Backend.max_calls) or "round-robin" (algorithm 4).
    dispatch: str = "call-load"
    # A call whose BYE never passed the edge stops counting against its worker after this long.
    call_load_expire_s: int = 3600
    drain_retry_after_s: int = 30
    shm_mb: int = 64
    pkg_mb: int = 8
    children: int = 2
    tcp_children: int = 2
    modules_dir: str = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
    log_level: int = 1  # Kamailio debug=: -1 error, 0 warning, 1 notice, 2 info, 3 debug
    start_timeout_s: float = 10.0
    registrations: tuple[Registration, ...] = ()
    # Where UA workers may place calls through the edge (trunks' `dial` hosts, port or None = any):
    # an INVITE from a UA worker to anywhere else is refused (the edge is no open relay).
    dial_targets: tuple[tuple[str, int | None], ...] = ()
    dial_ring_ms: int = 35000  # a placed call may ring this long at the edge (outbound.ring_timeout_s + 5 s)
    # Backends come and go at run time (``voicebot edge``: nodes announce them in the database and
    # they are added with dispatcher.add); the list may then start empty.
    dynamic: bool = False

    @property
    def config_path(self) -> Path:
        """Where the generated kamailio.cfg is written."""
        return self.run_dir / "kamailio.cfg"

    @property
    def dispatcher_list_path(self) -> Path:
        """Where the dispatcher destination list is written."""
        return self.run_dir / "dispatcher.list"

    @property
    def pid_path(self) -> Path:
        """Kamailio's pid file (-P)."""
        return self.run_dir / "kamailio.pid"

    @property
    def ctl_socket(self) -> Path:
        """The binrpc control socket kamcmd talks to."""
        return self.run_dir / "kamailio_ctl"

    @property
    def uacreg_dir(self) -> Path:
        """The db_text database (private: it holds trunk passwords) the uac module registers from."""
        return self.run_dir / "uacreg"

    @property
    def log_path(self) -> Path:
        """Kamailio's stderr log."""
        return self.run_dir / "kamailio.log"

    @property
    def advertised_host(self) -> str:
        """The host part Kamailio puts in Record-Route/Via (advertise, else the listen address)."""
        return self.advertise or self.listen

    @property
    def local_host(self) -> str:
        """An address of this host the edge answers on (loopback when it listens on a wildcard)."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.listen, self.listen)


_DIAL_HOST = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")


def validate(p: EdgeParams) -> None:
    """Raise :class:`ConfigError` naming the first invalid field of ``p`` and how to fix it."""
    if not p.transports or any(t not in TRANSPORTS for t in p.transports):
        raise ConfigError(f"edge transports {p.transports!r}: use one or more of {', '.join(TRANSPORTS)}")
    if "udp" not in p.transports:
        raise ConfigError("edge transports must include udp: the UA workers are reached over UDP")
    if "tls" in p.transports and (p.tls_cert is None or p.tls_key is None):
        raise ConfigError("edge transport tls needs tls_cert and tls_key (PEM files)")
    for name, port in (("port", p.port), ("tls_port", p.tls_port)):
        if not 0 < port < 65536:
            raise ConfigError(f"edge {name} {port} is not a port number (1-65535)")
    if not p.backends and not p.dynamic:
        raise ConfigError("edge needs at least one backend (UA worker); with one worker, skip the edge")
    for b in p.backends:
        if not 0 < b.port < 65536 or not b.host or b.max_calls < 0:
            raise ConfigError(f"edge backend {b!r}: host, port 1-65535 and max_calls >= 0 are required")
    for cidr in p.trunk_allow:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise ConfigError(f"edge trunk_allow entry {cidr!r} is not an IP address or CIDR: {exc}") from exc
    for ua in p.scanner_user_agents:
        if not _SAFE_UA.match(ua):
            raise ConfigError(
                f"edge scanner_user_agents entry {ua!r}: only letters, digits, space and ._/- are allowed"
            )
    if p.pike_reqs_per_interval < 1 or p.pike_interval_s < 1:
        raise ConfigError("edge pike_reqs_per_interval and pike_interval_s must be >= 1")
    if p.probe_interval_s < 1:
        raise ConfigError("edge probe_interval_s must be >= 1 second")
    for host, dial_port in p.dial_targets:
        if not _DIAL_HOST.match(host) or (dial_port is not None and not 0 < dial_port < 65536):
            raise ConfigError(
                f"edge dial target {host}:{dial_port}: a host name or address and a port 1-65535"
            )
    if p.max_message_bytes < 1024:
        raise ConfigError("edge max_message_bytes must be >= 1024 (an ordinary INVITE is ~1 KB)")
    if p.dispatch not in ("call-load", "round-robin"):
        raise ConfigError(f"edge dispatch {p.dispatch!r}: use call-load or round-robin")
    if len(str(p.ctl_socket)) > _MAX_SOCKET_PATH:
        raise ConfigError(f"edge run_dir {p.run_dir} is too long for a UNIX socket path; use a shorter one")
    if '"' in str(p.run_dir) or '"' in str(p.tls_cert or "") or '"' in str(p.tls_key or ""):
        raise ConfigError("edge paths must not contain double quotes")
    for r in p.registrations:
        if not _SAFE_NAME.match(r.name):
            raise ConfigError(f"edge registration {r.name!r}: a trunk name of letters, digits and ._- only")
        if not r.registrar.startswith(("sip:", "sips:")) or any(c in r.registrar for c in ' \n\r\t<>"'):
            raise ConfigError(f"trunk {r.name}: registrar {r.registrar!r} is not a sip: URI")
        if any(c in v for v in (r.username, r.password, r.realm) for c in "\n\r"):
            raise ConfigError(f"trunk {r.name}: username, password and realm must be one line each")
