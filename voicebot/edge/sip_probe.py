"""A minimal SIP request/response probe: build an OPTIONS, send raw bytes, read the final status.

Used by the runner to know when Kamailio really answers SIP (not just that the process exists), and
by tests to send hand-made (malformed, oversized) datagrams. Building and parsing are pure functions;
:func:`udp_request` is the only I/O.
"""

from __future__ import annotations

import asyncio
import secrets

from voicebot.errors import ProtocolError


def build_options(host: str, port: int, local_host: str, local_port: int, max_forwards: int = 70) -> bytes:
    """An out-of-dialog OPTIONS to ``sip:host:port`` (local_port 0 is fine for a connected socket)."""
    tag = secrets.token_hex(4)
    branch = "z9hG4bK" + secrets.token_hex(8)
    call_id = secrets.token_hex(8) + "@voicebot-edge-probe"
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local_host}:{local_port};branch={branch};rport\r\n"
        f"Max-Forwards: {max_forwards}\r\n"
        f"From: <sip:probe@{local_host}>;tag={tag}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "User-Agent: voicebot-edge-probe\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def parse_status(data: bytes) -> int:
    """The status code of a SIP response; ProtocolError if ``data`` is not one."""
    line = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("SIP/2.0") or not parts[1].isdigit():
        raise ProtocolError(f"not a SIP response: {line[:80]!r}")
    return int(parts[1])


class _Collector(asyncio.DatagramProtocol):
    """Resolves ``done`` with the first final (>= 200) response; provisional ones are skipped."""

    def __init__(self) -> None:
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            status = parse_status(data)
        except ProtocolError:
            return
        if status >= 200 and not self.done.done():
            self.done.set_result(data)


async def udp_request(
    host: str, port: int, payload: bytes, timeout: float = 2.0, local_host: str = "127.0.0.1"
) -> bytes | None:
    """Send ``payload`` in one datagram from ``local_host``; the final response, or None on timeout."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Collector, local_addr=(local_host, 0), remote_addr=(host, port)
    )
    try:
        transport.sendto(payload)
        return await asyncio.wait_for(asyncio.shield(proto.done), timeout)
    except TimeoutError:
        return None
    finally:
        transport.close()


async def options_ping(
    host: str, port: int, timeout: float = 1.0, local_host: str = "127.0.0.1"
) -> int | None:
    """Status of an OPTIONS sent over UDP to host:port, or None if nothing answered in time."""
    reply = await udp_request(host, port, build_options(host, port, local_host, 0), timeout, local_host)
    return None if reply is None else parse_status(reply)
