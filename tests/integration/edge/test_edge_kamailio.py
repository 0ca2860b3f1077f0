"""The Kamailio edge against real peers on loopback: sipp UAS backends, sipp UAC callers, raw UDP.

Each test starts its own Kamailio and three sipp UAS processes (see conftest.py); the measured
numbers printed here (run with -s) are the ones quoted in docs/edge.md.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from edge_peers import SCENARIOS, EdgeFactory, SippUas, SipStream, Uac, free_port, self_signed_cert

from voicebot.edge import sip_probe
from voicebot.edge.params import Backend
from voicebot.edge.runner import KamailioEdge
from voicebot.errors import EdgeError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TLS_MODULE = "/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so"


def rejected_scenario(workdir: Path, code: int) -> Path:
    """uac_rejected.xml expecting ``code``."""
    path = workdir / f"uac_rejected_{code}.xml"
    path.write_text((SCENARIOS / "uac_rejected.xml").read_text().replace("EXPECTED_CODE", str(code)))
    return path


def raw_request(
    method: str,
    port: int,
    *,
    max_forwards: int = 70,
    headers: str = "",
    body: str = "",
    src: str = "127.0.0.1",
) -> bytes:
    """A hand-made out-of-dialog request to the edge (rport makes the reply come back to our socket)."""
    tag = secrets.token_hex(4)
    return (
        f"{method} sip:bot@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src}:9;branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
        f"Max-Forwards: {max_forwards}\r\n"
        f"From: <sip:tester@{src}>;tag={tag}\r\n"
        f"To: <sip:bot@127.0.0.1:{port}>\r\n"
        f"Call-ID: {secrets.token_hex(8)}@edge-test\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:tester@{src}:9>\r\n"
        f"{headers}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


async def send(port: int, payload: bytes, src: str = "127.0.0.1", timeout: float = 1.5) -> bytes | None:
    return await sip_probe.udp_request("127.0.0.1", port, payload, timeout=timeout, local_host=src)


def status(reply: bytes | None) -> int | None:
    return None if reply is None else sip_probe.parse_status(reply)


async def assert_alive(edge: KamailioEdge) -> None:
    assert edge.returncode is None, "kamailio died"
    assert await sip_probe.options_ping("127.0.0.1", edge.params.port) == 200


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], timeout: float) -> float:
    """Poll ``check`` until it returns true; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def test_edge_answers_options_and_cleans_up(edge: KamailioEdge) -> None:
    assert edge.pid is not None
    assert edge.params.pid_path.exists() and edge.params.ctl_socket.exists()
    await assert_alive(edge)

    async def all_probed_and_active() -> bool:
        return set((await edge.backend_states()).values()) == {"AP"}  # A active, P probed

    await wait_for("every backend to answer a probe", all_probed_and_active, timeout=3)
    pid = edge.pid
    await edge.stop()
    assert edge.returncode is not None
    with pytest.raises(ProcessLookupError):  # no Kamailio child outlived the main process
        os.killpg(pid, 0)
    assert await sip_probe.options_ping("127.0.0.1", edge.params.port, timeout=0.5) is None


async def test_concurrent_calls_spread_across_backends(uac: Uac, backends: list[SippUas]) -> None:
    result = await uac.run(calls=12, concurrent=12, duration_ms=1500)

    assert result.returncode == 0, result.output
    assert result.successful == 12
    per_backend = [len(b.invites()) for b in backends]
    print(f"\ncall-load distribution of 12 concurrent calls: {per_backend}")
    # maxload=4 per worker (pjsua2's limit): 12 concurrent calls can only fit as 4/4/4.
    assert per_backend == [4, 4, 4]
    # The callers' BYEs followed the Record-Route through the edge to the right worker.
    assert [b.received("BYE") for b in backends] == [4, 4, 4]


async def test_dead_backend_fails_over_and_is_marked_down(
    edge: KamailioEdge, uac: Uac, backends: list[SippUas]
) -> None:
    # With equal (zero) load the dispatcher picks the same worker every time: find it, then kill it,
    # so the next call is sure to be sent to a dead worker first.
    assert (await uac.run(calls=1)).returncode == 0
    victim = next(b for b in backends if b.invites())
    await victim.kill()
    killed_at = time.monotonic()

    first = await uac.run(calls=1)
    assert first.returncode == 0, first.output

    victim_uri = f"sip:127.0.0.1:{victim.port}"

    async def marked_down() -> bool:
        return (await edge.backend_states())[victim_uri].startswith("I")

    await wait_for("the dead worker to be marked inactive", marked_down, timeout=5)
    detected_s = time.monotonic() - killed_at

    result = await uac.run(calls=6, concurrent=6, duration_ms=500)
    assert result.returncode == 0, result.output
    live = [b for b in backends if b is not victim]
    assert all(len(b.invites()) >= 2 for b in live)
    assert len(victim.invites()) == 1
    log = edge.params.log_path.read_text()
    assert "edge.failover status=408" in log or "edge.backend_down" in log
    print(f"\nfirst call after kill -9: {first.elapsed_s:.2f} s; worker marked inactive: {detected_s:.2f} s")


async def test_busy_backend_fails_over_on_486(
    start_edge: EdgeFactory, short_tmp: Path, backends: list[SippUas]
) -> None:
    busy = await SippUas(short_tmp, free_port(), scenario="uas_busy.xml").start()
    try:
        normal = backends[0]
        # Round robin, so exactly half of the calls are offered to the busy worker first.
        edge = await start_edge(backends=(Backend("127.0.0.1", normal.port), Backend("127.0.0.1", busy.port)),
                                dispatch="round-robin")  # fmt: skip
        result = await Uac(short_tmp, edge.params.port).run(calls=4)

        assert result.returncode == 0, result.output
        assert len(busy.invites()) == 2 and busy.received("ACK") == 2  # the edge ACKed the 486s
        assert len(normal.invites()) == 4
        assert "edge.failover status=486" in edge.params.log_path.read_text()
    finally:
        await busy.stop()


async def test_cancelled_call_releases_its_worker_slot(
    start_edge: EdgeFactory, short_tmp: Path, backends: list[SippUas]
) -> None:
    ringing = await SippUas(short_tmp, free_port(), scenario="uas_ringing.xml").start()
    try:
        # One slot only: if a CANCEL leaked call load, the second call would get 503 "no worker".
        edge = await start_edge(backends=(Backend("127.0.0.1", ringing.port, max_calls=1),))
        caller = Uac(short_tmp, edge.params.port)
        for _ in range(2):
            result = await caller.run(scenario="uac_cancel.xml")
            assert result.returncode == 0, result.output
        assert ringing.received("CANCEL") == 2 and ringing.received("ACK") == 2
    finally:
        await ringing.stop()


async def test_no_live_backend_gives_503(edge: KamailioEdge, backends: list[SippUas]) -> None:
    for backend in backends:
        await backend.kill()

    async def all_down() -> bool:
        return all(state.startswith("I") for state in (await edge.backend_states()).values())

    await wait_for("every worker to be marked inactive", all_down, timeout=5)
    reply = await send(edge.params.port, raw_request("INVITE", edge.params.port))
    assert status(reply) == 503
    assert reply is not None and b"Retry-After:" in reply
    # A PBX that probes before routing must not be told "up" when no call can be taken.
    assert status(await send(edge.params.port, raw_request("OPTIONS", edge.params.port))) == 503


async def test_backends_start_inactive_until_marked_ready(
    start_edge: EdgeFactory, backends: list[SippUas], short_tmp: Path
) -> None:
    """Until the supervisor says a UA worker is ready (or a probe answers), nothing is sent to it and
    the edge answers OPTIONS 503; once one is ready, OPTIONS gets 200 and calls go to it alone."""
    edge = await start_edge(activate=False, probe_interval_s=30)  # no probe will answer in this test
    assert all(s.startswith("I") for s in (await edge.backend_states()).values())  # I: inactive
    assert status(await send(edge.params.port, raw_request("OPTIONS", edge.params.port))) == 503
    reply = await send(edge.params.port, raw_request("INVITE", edge.params.port))
    assert status(reply) == 503
    assert not any(b.invites() for b in backends)

    await edge.set_backend(1, True)
    assert status(await send(edge.params.port, raw_request("OPTIONS", edge.params.port))) == 200
    caller = Uac(short_tmp, edge.params.port)
    try:
        result = await caller.run(calls=2, concurrent=2)
    finally:
        await caller.close()
    assert result.returncode == 0, result.output
    assert [len(b.invites()) for b in backends] == [0, 2, 0]

    await edge.set_backend(1, False)
    assert status(await send(edge.params.port, raw_request("OPTIONS", edge.params.port))) == 503


async def test_options_answered_503_while_draining(edge: KamailioEdge) -> None:
    assert status(await send(edge.params.port, raw_request("OPTIONS", edge.params.port))) == 200
    await edge.set_draining(True)
    reply = await send(edge.params.port, raw_request("OPTIONS", edge.params.port))
    assert status(reply) == 503
    assert reply is not None and b"Retry-After: 30" in reply


async def test_untrusted_source_gets_403(uac: Uac, short_tmp: Path, backends: list[SippUas]) -> None:
    result = await uac.run(scenario_path=rejected_scenario(short_tmp, 403), src="127.0.0.2")

    assert result.returncode == 0, result.output
    assert not any(b.invites() for b in backends)


async def test_scanner_user_agent_gets_no_answer(
    uac: Uac, edge: KamailioEdge, backends: list[SippUas], start_edge: EdgeFactory, short_tmp: Path
) -> None:
    result = await uac.run(scenario="scanner.xml", timeout=10)

    assert result.returncode == 0, result.output  # sipp fails the call on any response
    assert not any(b.invites() for b in backends)
    await assert_alive(edge)

    # Control: the same request through an edge without the scanner list is answered (100 Trying).
    open_edge = await start_edge(scanner_user_agents=())
    control = await Uac(short_tmp, open_edge.params.port).run(scenario="scanner.xml", timeout=10)
    assert control.returncode != 0


async def test_draining_rejects_new_invites_but_established_call_ends(
    edge: KamailioEdge, uac: Uac, short_tmp: Path, backends: list[SippUas]
) -> None:
    established = asyncio.create_task(uac.run(calls=1, duration_ms=3000), name="long-call")

    async def answered() -> bool:
        return any(b.received("ACK") for b in backends)

    await wait_for("the long call to be established", answered, timeout=5)
    await edge.set_draining(True)

    refused = await uac.run(scenario_path=rejected_scenario(short_tmp, 503))
    assert refused.returncode == 0, refused.output
    reply = await send(edge.params.port, raw_request("INVITE", edge.params.port))
    assert status(reply) == 503
    assert reply is not None and b"Retry-After: 30" in reply

    ended = await established
    assert ended.returncode == 0 and ended.successful == 1, ended.output
    assert sum(b.received("BYE") for b in backends) == 1

    await edge.set_draining(False)
    assert (await uac.run(calls=1)).returncode == 0


async def test_max_forwards_zero_gets_483(edge: KamailioEdge) -> None:
    for method in ("OPTIONS", "INVITE"):
        reply = await send(edge.params.port, raw_request(method, edge.params.port, max_forwards=0))
        assert status(reply) == 483, reply


async def test_unknown_method_gets_405_with_allow(edge: KamailioEdge) -> None:
    for method in ("FOO", "MESSAGE", "REGISTER"):
        reply = await send(edge.params.port, raw_request(method, edge.params.port))
        assert status(reply) == 405, reply
        assert reply is not None and b"Allow: INVITE, ACK, BYE" in reply


async def test_unsupported_proxy_require_gets_420(edge: KamailioEdge) -> None:
    reply = await send(
        edge.params.port, raw_request("INVITE", edge.params.port, headers="Proxy-Require: foo\r\n")
    )
    assert status(reply) == 420


async def test_in_dialog_request_without_dialog_gets_481(edge: KamailioEdge) -> None:
    payload = raw_request("BYE", edge.params.port).replace(
        b">\r\nCall-ID", b">;tag=nosuchdialog\r\nCall-ID", 1
    )
    assert status(await send(edge.params.port, payload)) == 481


async def test_malformed_requests_never_kill_the_edge(edge: KamailioEdge) -> None:
    port = edge.params.port
    no_call_id = b"\r\n".join(
        line for line in raw_request("OPTIONS", port).split(b"\r\n") if not line.startswith(b"Call-ID")
    )
    bad_cseq = raw_request("OPTIONS", port).replace(b"CSeq: 1 OPTIONS", b"CSeq: x INVITE")
    bad_length = raw_request("OPTIONS", port).replace(b"Content-Length: 0", b"Content-Length: 500")
    cases: dict[str, tuple[bytes, set[int | None]]] = {
        "binary junk": (bytes(range(256)) * 4, {None}),
        "request line only": (b"INVITE sip:x@y SIP/2.0\r\n\r\n", {None, 400}),
        "no Call-ID": (no_call_id, {None, 400}),
        "CSeq not a number / wrong method": (bad_cseq, {400}),
        "Content-Length beyond the datagram": (bad_length, {None, 400}),
        "bad Via": (raw_request("OPTIONS", port).replace(b"Via: SIP/2.0/UDP", b"Via: \x00\xff"), {None, 400}),
    }
    for name, (payload, allowed) in cases.items():
        got = status(await send(port, payload, timeout=0.5))
        assert got in allowed, f"{name}: got {got}"
        await assert_alive(edge)

    # A garbage flood must not fill the disk through Kamailio's log (it logged ~170 bytes per datagram).
    log_size = edge.params.log_path.stat().st_size
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(200):
            s.sendto(bytes(range(256)), ("127.0.0.1", port))
    await assert_alive(edge)
    assert edge.params.log_path.stat().st_size - log_size < 1000


async def test_oversized_message_gets_513(edge: KamailioEdge) -> None:
    padding = "X-Padding: " + "a" * 9000 + "\r\n"
    reply = await send(edge.params.port, raw_request("INVITE", edge.params.port, headers=padding))
    assert status(reply) == 513
    await assert_alive(edge)


async def test_flood_from_one_address_is_dropped(edge: KamailioEdge) -> None:
    port = edge.params.port

    def flood() -> int:
        answered = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.3", 0))
            for _ in range(400):
                s.sendto(raw_request("OPTIONS", port, src="127.0.0.3"), ("127.0.0.1", port))
            s.settimeout(0.5)
            try:
                while True:
                    s.recvfrom(65535)
                    answered += 1
            except TimeoutError:
                pass
        return answered

    answered = await asyncio.to_thread(flood)
    print(f"\npike: {answered} of 400 back-to-back OPTIONS from one address answered")
    assert answered < 400
    assert status(await send(port, raw_request("OPTIONS", port, src="127.0.0.3"), src="127.0.0.3")) is None
    await assert_alive(edge)  # other sources are unaffected


async def test_busy_trunk_is_not_throttled_by_pike(edge: KamailioEdge, uac: Uac) -> None:
    # 60 calls x 3 requests from the trunk's one address is far above the 100 requests / 2 s limit.
    result = await uac.run(calls=60, concurrent=10)

    assert result.returncode == 0 and result.successful == 60, result.output
    assert "BLOCKing" not in edge.params.log_path.read_text(errors="replace")
    print(f"\n60 calls (10 at a time) through the edge: {result.elapsed_s:.2f} s")


async def test_round_robin_spreads_sequential_calls(
    start_edge: EdgeFactory, short_tmp: Path, backends: list[SippUas]
) -> None:
    edge = await start_edge(dispatch="round-robin")
    result = await Uac(short_tmp, edge.params.port).run(calls=6)

    assert result.returncode == 0, result.output
    assert [len(b.invites()) for b in backends] == [2, 2, 2]


async def test_wildcard_listen_with_advertised_address(
    start_edge: EdgeFactory, short_tmp: Path, backends: list[SippUas]
) -> None:
    # The supervisor's defaults: listen on every address, advertise the reachable one.
    edge = await start_edge(listen="0.0.0.0", advertise="127.0.0.1")
    result = await Uac(short_tmp, edge.params.port).run(calls=3, concurrent=3, duration_ms=200)

    assert result.returncode == 0, result.output
    assert sum(b.received("BYE") for b in backends) == 3
    assert "advertise 127.0.0.1:" in edge.params.config_path.read_text()


async def test_tcp_caller_reaches_udp_backend(uac: Uac, backends: list[SippUas]) -> None:
    result = await uac.run(calls=2, extra=("-t", "t1"))

    assert result.returncode == 0, result.output
    assert sum(len(b.invites()) for b in backends) == 2
    assert sum(b.received("BYE") for b in backends) == 2


async def test_start_fails_cleanly_when_port_is_taken(start_edge: EdgeFactory) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]
        with pytest.raises(EdgeError, match="kamailio"):
            await start_edge(port=port, start_timeout_s=5.0)


def in_dialog(method: str, invite: str, ok: str, via: str, cseq: int) -> str:
    """ACK/BYE for the dialog ``invite`` established with ``ok``: to its Contact, via its route set."""
    contact = re.search(r"^Contact:\s*<([^>]+)>", ok, re.MULTILINE)
    to = re.search(r"^To:[^\r\n]*", ok, re.MULTILINE)
    assert contact and to
    record_route = ",".join(re.findall(r"^Record-Route:\s*(.+?)\r$", ok, re.MULTILINE))
    routes = [r.strip() for r in record_route.split(",")][::-1]  # RFC 3261 12.1.2: UAC reverses them
    copied = "\r\n".join(re.findall(r"^(?:From|Call-ID):[^\r\n]*", invite, re.MULTILINE))
    return (
        f"{method} {contact.group(1)} SIP/2.0\r\n"
        f"Via: {via};branch=z9hG4bK{secrets.token_hex(8)}\r\n"
        + "".join(f"Route: {r}\r\n" for r in routes)
        + f"{copied}\r\n{to.group(0)}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )


async def test_tls_caller_completes_a_call_to_a_udp_backend(
    start_edge: EdgeFactory, short_tmp: Path, backends: list[SippUas]
) -> None:
    cert, key = self_signed_cert(short_tmp)
    edge = await start_edge(transports=("udp", "tcp", "tls"), tls_cert=cert, tls_key=key)
    port = edge.params.tls_port
    client = await SipStream.connect(port, tls=True)
    try:
        via = f"SIP/2.0/TLS 127.0.0.1:{client.local_port}"
        sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        sdp += "m=audio 4000 RTP/AVP 0\r\n"
        invite = (
            raw_request("INVITE", port, headers="Content-Type: application/sdp\r\n", body=sdp)
            .decode()
            .replace("SIP/2.0/UDP 127.0.0.1:9", via)
            .replace(
                "Contact: <sip:tester@127.0.0.1:9>",
                f"Contact: <sip:tester@127.0.0.1:{client.local_port};transport=tls>",
            )
        )
        await client.send(invite)
        ok = await client.final_response()
        assert ok.startswith("SIP/2.0 200"), ok
        # Double Record-Route: one entry for the TLS side, one for the UDP side of the edge.
        record_route = ",".join(re.findall(r"^Record-Route:(.*)$", ok, re.MULTILINE))
        assert record_route.count("<sip:") == 2 and "transport=tls" in record_route, record_route

        await client.send(in_dialog("ACK", invite, ok, via, 1))
        await client.send(in_dialog("BYE", invite, ok, via, 2))
        bye_ok = await client.final_response()
        while "CSeq: 1 INVITE" in bye_ok:  # a 200 retransmission that crossed our ACK
            bye_ok = await client.final_response()
        assert bye_ok.startswith("SIP/2.0 200") and "CSeq: 2 BYE" in bye_ok, bye_ok
        assert sum(b.received("ACK") for b in backends) == 1
        assert sum(b.received("BYE") for b in backends) == 1
    finally:
        await client.close()
