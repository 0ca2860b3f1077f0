"""The bridge port's playout logic, driven the way pjmedia drives it (no endpoint needed)."""

from __future__ import annotations

import socket

import pjsua2 as pj
import pytest

from voicebot.ipc import proto
from voicebot.media.frames import frame_bytes, read_frame, write_frame
from voicebot.ua.port import FRAMES_PER_MESSAGE, CallAudioPort


def test_frame_copy_round_trip() -> None:
    f = pj.MediaFrame()
    write_frame(f, b"\x01\x02" * 160)
    assert read_frame(f) == b"\x01\x02" * 160
    assert f.size == 320 == frame_bytes(8000)


def test_playout_rechunks_pads_reports_marks_and_flushes() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    port = CallAudioPort(a, 8000)
    port.enqueue_audio(b"\x11" * 500)  # 1.56 frames -> 2 frames, the last padded
    port.enqueue_mark("m1")
    port.enqueue_audio(b"\x22" * 320)
    out = []
    for _ in range(4):
        f = pj.MediaFrame()
        port.onFrameRequested(f)
        out.append(read_frame(f))
    assert out[0] == b"\x11" * 320
    assert out[1] == b"\x11" * 180 + b"\x00" * 140
    assert out[2] == b"\x22" * 320 and list(port.stats.marks) == ["m1"]
    assert out[3] == b"\x00" * 320 and port.stats.frames_silence == 1
    port.enqueue_audio(b"\x33" * 960)
    port.enqueue_mark("m2")
    port.request_flush()  # the media thread carries it out at its next frame
    port.enqueue_mark("m3")  # queued after the flush: kept
    assert list(port.stats.dropped) == []
    f = pj.MediaFrame()
    port.onFrameRequested(f)
    assert read_frame(f) == b"\x00" * 320  # the flushed audio never plays
    assert list(port.stats.dropped) == ["m2"] and list(port.stats.marks) == ["m1", "m3"]

    # caller audio goes out FRAMES_PER_MESSAGE frames per message, in order
    b.setblocking(False)
    sent = []
    for i in range(2 * FRAMES_PER_MESSAGE):
        rx = pj.MediaFrame()
        write_frame(rx, bytes([i, 0]) * 160)
        rx.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        port.onFrameReceived(rx)
        sent.append(bytes([i, 0]) * 160)
        if i + 1 < FRAMES_PER_MESSAGE:
            with pytest.raises(BlockingIOError):  # held until the message is full
                b.recv(10000)
    assert proto.decode(b.recv(10000)) == b"".join(sent[:FRAMES_PER_MESSAGE])
    assert proto.decode(b.recv(10000)) == b"".join(sent[FRAMES_PER_MESSAGE:])
    assert port.stats.frames_in == 2 * FRAMES_PER_MESSAGE
    a.close()
    b.close()


def test_silence_inside_a_prompt_counts_as_a_gap_and_between_prompts_or_after_barge_in_does_not() -> None:
    a, _b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    port = CallAudioPort(a, 8000)

    def tick(n: int = 1) -> None:
        for _ in range(n):
            port.onFrameRequested(pj.MediaFrame())

    port.enqueue_audio(b"\x11" * 640)  # the first sentence of a prompt
    tick(2)
    tick(3)  # the next sentence is late: three frames of silence the caller hears
    assert port.stats.underruns == 3
    port.enqueue_audio(b"\x11" * 320)
    port.enqueue_mark("prompt")  # the prompt's end
    tick(5)  # silence after the prompt: waiting for the caller, not a gap
    assert port.stats.underruns == 3 and list(port.stats.marks) == ["prompt"]
    port.enqueue_audio(b"\x22" * 3200)
    tick(2)
    port.request_flush()  # barge-in cuts the prompt off
    tick(4)
    assert port.stats.underruns == 3 and port.stats.frames_out == 5
    a.close()


def test_flushes_from_the_main_thread_while_the_media_thread_plays_report_every_mark_once() -> None:
    """The media thread owns the playout queue: main-thread flushes are requests it carries out, so
    nothing is iterated while it changes ("deque mutated during iteration") and no mark is reported
    twice or lost, however the two threads interleave."""
    import threading

    a, _b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    port = CallAudioPort(a, 8000)
    stop = threading.Event()
    errors: list[BaseException] = []

    def media_thread() -> None:
        try:
            while not stop.is_set():
                port.onFrameRequested(pj.MediaFrame())
        except BaseException as exc:  # pragma: no cover - the failure this test is about
            errors.append(exc)

    t = threading.Thread(target=media_thread)
    t.start()
    marks = [f"m{i}" for i in range(3000)]
    for i, mark in enumerate(marks):
        port.enqueue_audio(b"\x01" * 640)
        port.enqueue_mark(mark)
        if i % 7 == 0:
            port.request_flush()
    port.request_flush()
    for _ in range(200):
        if not port._inbox:
            break
        threading.Event().wait(0.005)
    stop.set()
    t.join()
    played, dropped = list(port.stats.marks), list(port.stats.dropped)
    assert not errors
    assert sorted(played + dropped) == sorted(marks) and not set(played) & set(dropped)
    a.close()


def test_a_reused_port_serves_its_next_call_from_a_clean_state() -> None:
    """Ports are reused, not freed (pjsua2 frees a port at once while the bridge removes it later):
    nothing of the last call (queued audio, marks, counters, its worker's socket) reaches the next."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    c, d = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    port = CallAudioPort(a, 8000)
    port.enqueue_audio(b"\x11" * 960)
    port.enqueue_mark("old")
    f = pj.MediaFrame()
    port.onFrameRequested(f)
    rx = pj.MediaFrame()
    write_frame(rx, b"\x05\x00" * 160)
    rx.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
    port.onFrameReceived(rx)  # half a message held for the old call's worker
    old_stats = port.stats
    port.reset(c)
    assert port.stats is not old_stats and port.stats.frames_out == 0 and not port.stats.marks
    f = pj.MediaFrame()
    port.onFrameRequested(f)
    assert read_frame(f) == b"\x00" * 320 and port.stats.underruns == 0  # nothing of the old prompt
    d.setblocking(False)
    sent = []
    for i in range(FRAMES_PER_MESSAGE):
        rx = pj.MediaFrame()
        write_frame(rx, bytes([i + 1, 0]) * 160)
        rx.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        port.onFrameReceived(rx)
        sent.append(bytes([i + 1, 0]) * 160)
    assert proto.decode(d.recv(10000)) == b"".join(sent)  # the new worker, without the old half message
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(10000)  # the old worker gets nothing more
