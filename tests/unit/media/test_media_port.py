"""The bridge port's playout logic, driven the way pjmedia drives it (no endpoint needed)."""

from __future__ import annotations

import socket

import pjsua2 as pj

from voicebot.ipc import proto
from voicebot.media.frames import frame_bytes, read_frame, write_frame
from voicebot.media.port import CallAudioPort


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
    assert port.queued_frames == 3
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
    assert port.flush() == ["m2"] and port.queued_frames == 0

    rx = pj.MediaFrame()
    write_frame(rx, b"\x05\x00" * 160)
    rx.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
    port.onFrameReceived(rx)
    assert proto.decode(b.recv(1000)) == b"\x05\x00" * 160
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
    port.flush()  # barge-in cuts the prompt off
    tick(4)
    assert port.stats.underruns == 3 and port.stats.frames_out == 5
    a.close()
