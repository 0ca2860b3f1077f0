"""Caller scripts (recorded turns, barge-ins), fault specs, timed commands, barge-in figures."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from voicebot.errors import ConfigError
from voicebot.loadtest import slo
from voicebot.loadtest.faults import CommandRunner, FaultProxy, ProxyFault, TimedCommand
from voicebot.loadtest.results import CallResult, summarise, table
from voicebot.loadtest.script import Action, Expect, from_tests
from voicebot.media.audiofile import wav_bytes


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "callers.yaml"
    path.write_text(body)
    return path


def test_a_caller_script_has_recorded_turns_barge_ins_and_endings(tmp_path: Path) -> None:
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "hi.wav").write_bytes(wav_bytes(bytes(1600), 8000))
    path = _script(
        tmp_path,
        "callers:\n"
        "  - name: a\n"
        "    turns: [{barge: sales please}, {wav: rec/hi.wav}, {barge_wav: rec/hi.wav}, {keys: '1#'},\n"
        "            {say: bye}, {silence: true}]\n"
        "    expect: {transfer: sales}\n"
        "  - name: b\n"
        "    turns: []\n"
        "    expect: {hangup: true}\n"
        "    transfers_fail: true\n",
    )
    scripts, skipped = from_tests(path)
    assert skipped == [] and [s.name for s in scripts] == ["a", "b"]
    wav = str((tmp_path / "rec" / "hi.wav").resolve())
    assert scripts[0].actions == (
        Action("barge", "sales please"),
        Action("wav", wav),
        Action("barge_wav", wav),
        Action("keys", "1#"),
        Action("speak", "bye"),
        Action("silence"),
    )
    assert [a.barges_in for a in scripts[0].actions][:3] == [True, False, True]
    assert scripts[0].expect == Expect("transfer", "sales")
    assert scripts[1].expect == Expect("hangup") and scripts[1].transfers_fail
    assert [s.name for s in from_tests(path, ["b"])[0]] == ["b"]


@pytest.mark.parametrize(
    ("turns", "error"),
    [
        ("[{wav: missing.wav}]", "missing.wav: cannot read"),
        ("[{wav: broken.wav}]", "not a PCM WAV"),
        ("[{shout: hey}]", "unknown turn 'shout'"),
        ("[{keys: '12x'}]", "not DTMF digits"),
        ("[{say: ''}]", "needs words"),
        ("[{say: a, keys: '1'}]", "a turn is one of"),
    ],
)
def test_a_broken_caller_script_says_which_caller_and_turn(tmp_path: Path, turns: str, error: str) -> None:
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    path = _script(tmp_path, f"callers:\n  - name: x\n    turns: {turns}\n")
    with pytest.raises(ConfigError, match=r"callers\[0\]\.turns\[0\]") as exc:
        from_tests(path)
    assert error in str(exc.value)


def test_a_caller_script_refuses_unknown_keys_and_endings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'expects'"):
        from_tests(_script(tmp_path, "callers:\n  - {name: x, turns: [], expects: {hangup: true}}\n"))
    with pytest.raises(ConfigError, match="expect is"):
        from_tests(_script(tmp_path, "callers:\n  - {name: x, turns: [], expect: {queue: sales}}\n"))
    with pytest.raises(ConfigError, match="no caller named"):
        from_tests(_script(tmp_path, "callers:\n  - {name: x, turns: []}\n"), ["y"])


def test_barge_in_stops_are_summarised_and_held_to_the_slo(tmp_path: Path) -> None:
    calls = [
        CallResult("a", answered=True, ok=True, barge_ins=2, barge_stops_ms=[200.0, 400.0]),
        CallResult("b", answered=True, ok=True, barge_ins=1, barge_missed=1),
    ]
    summary = summarise(calls, 10.0, 2)
    assert summary["barge_ins"] == 3 and summary["barge_missed"] == 1
    assert summary["barge_stop_ms"] == {"p50": 200.0, "p95": 400.0, "p99": 400.0}
    assert "barge-in stop ms p50 200  p95 400" in table(summary) and "1 not stopped" in table(summary)
    path = tmp_path / "slo.yaml"
    path.write_text("barge_stop_ms_p95_max: 300\n")
    assert slo.misses(slo.read(path), summary) == ["barge_stop_ms p95 400 ms > 300 ms"]


def test_fault_specs_are_checked() -> None:
    fault = ProxyFault.parse("127.0.0.1:9101=http://127.0.0.1:8080/,status=429,rate=0.3,delay_s=1.5")
    assert fault == ProxyFault("127.0.0.1:9101", "http://127.0.0.1:8080", 429, 0.3, 1.5)
    for bad, why in [
        ("127.0.0.1:9101", "LISTEN=http"),
        ("127.0.0.1:9101=http://x,status=200", "HTTP error"),
        ("127.0.0.1:9101=http://x,rate=2,status=503", "rate is 0..1"),
        ("127.0.0.1:9101=http://x", "say which fault"),
        ("127.0.0.1:9101=http://x,colour=red", "unknown option"),
    ]:
        with pytest.raises(ConfigError, match=why):
            ProxyFault.parse(bad)
    assert TimedCommand.parse("2.5:pg_ctl stop") == TimedCommand(2.5, "pg_ctl stop")
    with pytest.raises(ConfigError, match="SECONDS:COMMAND"):
        TimedCommand.parse("soon:pg_ctl stop")


def test_the_fault_proxy_fails_a_share_of_requests_the_same_way_each_run(tmp_path: Path) -> None:
    """Through a real HTTP upstream: the seed picks which requests are hit, so two runs match."""
    from support.jsonapi import JsonApi
    from support.net import free_port

    up = JsonApi(lambda _: {"ok": True})
    codes: list[list[int]] = []
    for _ in range(2):
        listen = f"127.0.0.1:{free_port()}"
        proxy = FaultProxy(ProxyFault(listen, up.url, 429, 0.5, 0.0, seed=7))
        proxy.start()
        try:
            codes.append([httpx.get(f"http://{listen}/x").status_code for _ in range(20)])
        finally:
            proxy.stop()
        assert proxy.counts.requests == 20 and proxy.counts.failed + proxy.counts.forwarded == 20
    up.stop()
    assert codes[0] == codes[1] and set(codes[0]) == {200, 429}  # the same requests hit each run


def test_timed_commands_run_on_time_and_the_rest_at_the_end(tmp_path: Path) -> None:
    runner = CommandRunner(
        [TimedCommand(0.2, f"touch {tmp_path / 'early'}"), TimedCommand(600, f"touch {tmp_path / 'late'}")]
    )
    runner.start()
    time.sleep(1.0)
    assert (tmp_path / "early").exists() and not (tmp_path / "late").exists()
    runner.stop()
    assert (tmp_path / "late").exists()
    assert [(c["command"].split("/")[-1], c["exit"]) for c in runner.done] == [("early", 0), ("late", 0)]
    assert runner.done[0]["ran_at_s"] >= 0.2


def test_a_slow_first_token_through_the_fault_proxy_then_the_stream_flows() -> None:
    """An LLM-like upstream streaming server-sent events: the proxy holds the request (a slow first
    token), then passes each chunk on as it comes, not the whole reply at the end."""
    import asyncio
    import threading

    from aiohttp import web
    from support.net import free_port

    async def stream(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await reply.prepare(request)
        for i in range(3):
            await reply.write(f'data: {{"token": {i}}}\n\n'.encode())
            await asyncio.sleep(0.3)
        await reply.write(b"data: [DONE]\n\n")
        return reply

    loop = asyncio.new_event_loop()
    up_port = free_port()

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", stream)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", up_port).start()
        return runner

    threading.Thread(target=loop.run_forever, daemon=True).start()
    runner = asyncio.run_coroutine_threadsafe(serve(), loop).result(10)
    listen = f"127.0.0.1:{free_port()}"
    proxy = FaultProxy(ProxyFault(listen, f"http://127.0.0.1:{up_port}", 0, 1.0, 1.0))
    proxy.start()
    try:
        started = time.monotonic()
        arrivals = []
        with httpx.stream("POST", f"http://{listen}/v1/chat/completions", json={"stream": True}) as reply:
            for line in reply.iter_lines():
                if line.startswith("data:"):
                    arrivals.append(time.monotonic() - started)
        assert len(arrivals) == 4
        assert arrivals[0] >= 1.0  # the first token waited for the injected delay
        assert arrivals[2] - arrivals[0] >= 0.5  # later tokens came as the upstream sent them
        assert proxy.counts.delayed == 1 and proxy.counts.forwarded == 1 and proxy.counts.failed == 0
    finally:
        proxy.stop()
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
