"""The Kamailio edge against real peers on loopback: sipp UAS backends, sipp UAC callers, raw UDP.

Each test starts its own Kamailio and three sipp UAS processes (see conftest.py); the measured
numbers printed here (run with -s) are the ones quoted in docs/edge.md.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from edge_peers import SCENARIOS, EdgeFactory, SippUas, Uac

from voicebot.edge import sip_probe
from voicebot.edge.runner import KamailioEdge
from voicebot.errors import EdgeError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


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
    await edge.stop()
    assert edge.returncode is not None
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
