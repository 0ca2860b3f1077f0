"""Fast access to pjsua2 ``MediaFrame`` buffers.

SWIG's ``bytes(frame.buf)`` walks the std::vector element by element (~180-300 us per 20 ms frame);
reading the vector's begin/end pointers and copying the memory costs ~2 us (bench in
docs/benchmarks.md). libstdc++ lays a ``std::vector<unsigned char>`` out as three pointers
(begin, end, capacity) at the address SWIG wraps.
"""

from __future__ import annotations

import ctypes
from typing import Any

_Ptr2 = ctypes.c_void_p * 2


def read_frame(frame: Any) -> bytes:
    """Copy a MediaFrame's payload out as bytes."""
    vec = frame.buf
    begin, end = _Ptr2.from_address(int(vec.this))
    if not begin or not end or end <= begin:
        return b""
    return ctypes.string_at(begin, end - begin)


def write_frame(frame: Any, pcm: bytes) -> None:
    """Fill a MediaFrame with ``pcm`` (resizing its vector) and mark it as audio."""
    vec = frame.buf
    vec.resize(len(pcm))
    begin = _Ptr2.from_address(int(vec.this))[0]
    if begin:
        ctypes.memmove(begin, pcm, len(pcm))
    frame.size = len(pcm)


def frame_bytes(sample_rate: int, ptime_ms: int = 20) -> int:
    """Bytes in one mono s16 frame."""
    return sample_rate * ptime_ms // 1000 * 2
