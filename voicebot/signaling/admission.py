"""Sans-I/O admission of an incoming INVITE: which trunk, or which SIP response and why.

Order matters and is RFC-minded: who is calling (403) before whether we can take it (503/486) before
what they offer (488).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from voicebot.signaling.params import TrunkParams


@dataclass(frozen=True)
class Admit:
    trunk: str


@dataclass(frozen=True)
class Reject:
    code: int
    reason: str


@lru_cache(maxsize=256)
def _net(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def in_any(ip: str, cidrs: Sequence[str]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr.version == _net(c).version and addr in _net(c) for c in cidrs)


def source_ip(src_address: str) -> str:
    """'1.2.3.4:5060' or '[::1]:5060' -> host part."""
    if src_address.startswith("["):
        return src_address[1 : src_address.find("]")]
    return src_address.rsplit(":", 1)[0] if src_address.count(":") == 1 else src_address


def find_trunk(ip: str, trunks: Sequence[TrunkParams]) -> TrunkParams | None:
    for trunk in trunks:
        if in_any(ip, trunk.allow):
            return trunk
    return None


@dataclass(frozen=True)
class AdmissionInput:
    source: str  # IP of the previous hop
    original_source: str | None  # IP the edge saw (X-Voicebot-Source), when behind the edge
    draining: bool
    active_calls: int
    max_calls: int
    offers_crypto: bool
    offers_plain: bool


def admit(
    req: AdmissionInput, trunks: Sequence[TrunkParams], behind_edge: bool, edge_sources: Sequence[str]
) -> Admit | Reject:
    """Decide what to do with an initial INVITE."""
    if behind_edge:
        if not in_any(req.source, edge_sources):
            return Reject(403, "Forbidden: not from the SIP edge")
        caller_ip = req.original_source or req.source
    else:
        caller_ip = req.source
    trunk = find_trunk(caller_ip, trunks)
    if trunk is None:
        return Reject(403, "Forbidden: source not on any trunk allowlist")
    if req.draining:
        return Reject(503, "Service Unavailable: draining")
    if req.active_calls >= req.max_calls:
        return Reject(486, "Busy Here")
    if trunk.srtp == "mandatory" and not req.offers_crypto:
        return Reject(488, "Not Acceptable Here: SRTP required")
    if trunk.srtp == "off" and not req.offers_plain:
        return Reject(488, "Not Acceptable Here: SRTP disabled on this trunk")
    return Admit(trunk.name)
