#!/usr/bin/env python3
"""Cost of moving one 20 ms frame between pjsua2 and Python: SWIG's way vs media/frames.py.

.venv/bin/python bench/frame_copy.py
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pjsua2 as pj

from voicebot.media.frames import read_frame, write_frame


def main() -> int:
    frame = pj.MediaFrame()
    pcm = bytes(range(256)) + bytes(64)
    write_frame(frame, pcm)
    n = 20000
    rows = {
        "read  bytes(frame.buf) (SWIG)": timeit.timeit(lambda: bytes(frame.buf), number=n // 10) / (n // 10),
        "read  read_frame (memcpy)": timeit.timeit(lambda: read_frame(frame), number=n) / n,
        "write ByteVector(list) (SWIG)": timeit.timeit(
            lambda: setattr(frame, "buf", pj.ByteVector(list(pcm))), number=n // 10
        )
        / (n // 10),
        "write write_frame (memcpy)": timeit.timeit(lambda: write_frame(frame, pcm), number=n) / n,
    }
    for name, seconds in rows.items():
        print(f"{name:<32} {seconds * 1e6:8.1f} us/frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
