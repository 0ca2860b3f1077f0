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
