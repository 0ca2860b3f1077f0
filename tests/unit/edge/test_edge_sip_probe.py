"""The OPTIONS probe's pure parts, and its UDP round trip against an in-process responder."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from voicebot.edge import sip_probe
from voicebot.errors import ProtocolError


def test_options_is_a_complete_request() -> None:
    msg = sip_probe.build_options("127.0.0.1", 5060, "127.0.0.2", 0, max_forwards=0).decode()

    assert msg.startswith("OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n")
    assert "Max-Forwards: 0\r\n" in msg and ";rport" in msg
    assert msg.endswith("Content-Length: 0\r\n\r\n")
    assert msg != sip_probe.build_options("127.0.0.1", 5060, "127.0.0.2", 0, max_forwards=0).decode()


def test_parse_status() -> None:
    assert sip_probe.parse_status(b"SIP/2.0 483 Too Many Hops\r\nVia: x\r\n\r\n") == 483
    for bad in (b"", b"OPTIONS sip:x SIP/2.0\r\n", b"SIP/2.0 abc\r\n", b"\x00\xff"):
        with pytest.raises(ProtocolError):
            sip_probe.parse_status(bad)


class _Responder(asyncio.DatagramProtocol):
    """Answers every datagram with a 100 then a 200, like a proxy relaying an INVITE."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.transport.sendto(b"garbage", addr)
        self.transport.sendto(b"SIP/2.0 100 Trying\r\n\r\n", addr)
        self.transport.sendto(b"SIP/2.0 200 OK\r\n\r\n", addr)


async def test_udp_request_skips_provisional_and_garbage() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Responder, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        assert await sip_probe.options_ping("127.0.0.1", port) == 200
    finally:
        transport.close()


async def test_udp_request_times_out_to_none() -> None:
    loop = asyncio.get_running_loop()
    silent, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    try:
        port = silent.get_extra_info("sockname")[1]
        assert await sip_probe.options_ping("127.0.0.1", port, timeout=0.2) is None
    finally:
        silent.close()
