"""The per-call audio bridge between pjmedia's conference bridge and a per-call worker.

pjmedia calls :meth:`onFrameReceived` (caller audio) and :meth:`onFrameRequested` (bot audio) every
20 ms on its single media thread; pacing of outgoing RTP therefore stays in pjmedia's clock, never in
Python sleeps. Both callbacks do constant, tiny work: a memcpy, a deque pop, a non-blocking send.
Everything else (parsing IPC, call control) happens on the UA worker's main thread.

The media thread owns the playout queue. The main thread only appends requests to an inbox (audio,
marks, "flush"): a deque's append and popleft are atomic, so nothing is iterated by one thread while
the other changes it. Marks reached or flushed come back the same way, each reported once.
"""

from __future__ import annotations

import collections
import socket
from dataclasses import dataclass, field

import pjsua2 as pj

from voicebot.ipc import proto
from voicebot.media.frames import read_frame, write_frame

_FLUSH = object()  # the inbox request "drop everything queued before me"
# Caller audio goes to the call worker two frames (40 ms) per message: half the wake-ups and system
# calls in both processes (docs/benchmarks.md, "Per-call CPU"), for at most 20 ms more before the
# call worker's VAD sees a frame. The call worker splits messages back into 20 ms frames.
FRAMES_PER_MESSAGE = 2


@dataclass
class PortStats:
    """Counters read by the main thread (ints are safe to read across threads under the GIL)."""

    frames_in: int = 0
    frames_out: int = 0
    frames_silence: int = 0
    # Silent frames sent in the middle of a prompt (its audio had started and its end mark had not
    # been reached): gaps the caller hears, e.g. speech synthesis slower than playout.
    underruns: int = 0
    dropped_to_worker: int = 0
    marks: collections.deque[str] = field(default_factory=collections.deque)  # reached: played
    dropped: collections.deque[str] = field(default_factory=collections.deque)  # flushed: never played


class CallAudioPort(pj.AudioMediaPort):  # type: ignore[misc]
    """Conference-bridge port of one call: caller audio to the worker, queued bot audio to the caller."""

    def __init__(self, sock: socket.socket, sample_rate: int) -> None:
        super().__init__()
        self._sock = sock
        self._frame_len = sample_rate // 50 * 2
        self._silence = bytes(self._frame_len)
        self._pending = bytearray()  # media thread only: caller frames not yet sent
        self._inbox: collections.deque[bytes | str | object] = collections.deque()  # main -> media
        self._playout: collections.deque[bytes | str] = collections.deque()  # media thread only
        self._in_prompt = False  # media thread only
        self._cut = False  # media thread only
        self.stats = PortStats()
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, sample_rate, 1, 20000, 16)
        self._fmt = fmt

    def create(self, name: str) -> None:
        self.createPort(name, self._fmt)

    def reset(self, sock: socket.socket) -> None:
        """Serve a new call (main thread; only on a port idle since its last call ended, so the media
        thread no longer touches this state: nothing is connected to it, and pjmedia hands an
        unconnected port no audio). Ports are reused, never freed while the endpoint runs: pjsua2
        frees a port's C++ object at once while the bridge removes the port asynchronously on its
        clock thread, so freeing one could leave the bridge calling into freed memory."""
        self._sock = sock
        self._pending = bytearray()
        self._inbox = collections.deque()
        self._playout = collections.deque()
        self._in_prompt = self._cut = False
        self.stats = PortStats()

    def attach(self, sock: socket.socket) -> None:
        """Send caller audio to another call worker from now on (the call's worker was replaced)."""
        self._sock = sock

    # --- main thread -----------------------------------------------------------------------
    def enqueue_audio(self, pcm: bytes) -> None:
        """Queue bot audio; re-chunk to whole frames (the last one padded with silence)."""
        n = self._frame_len
        for i in range(0, len(pcm), n):
            chunk = pcm[i : i + n]
            if len(chunk) < n:
                chunk += bytes(n - len(chunk))
            self._inbox.append(chunk)

    def enqueue_mark(self, mark: str) -> None:
        """A mark ends the audio queued before it (one prompt, or the bot's turn so far)."""
        self._inbox.append(mark)

    def request_flush(self) -> None:
        """Barge-in: the media thread drops everything queued before this request at its next frame;
        the marks dropped with it come back in ``stats.dropped``."""
        self._inbox.append(_FLUSH)

    # --- pjmedia thread ----------------------------------------------------------------------
    def _take_inbox(self) -> None:
        inbox, playout = self._inbox, self._playout
        while inbox:
            item = inbox.popleft()
            if item is _FLUSH:
                for queued in playout:
                    if isinstance(queued, str):
                        self.stats.dropped.append(queued)
                playout.clear()
                self._cut = True  # the prompt was cut off (barge-in), not starved
            else:
                playout.append(item)  # type: ignore[arg-type]

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO:
            return
        self.stats.frames_in += 1
        pending = self._pending
        pending += read_frame(frame)
        if len(pending) < FRAMES_PER_MESSAGE * self._frame_len:
            return
        message = proto.AUDIO + pending
        pending.clear()
        try:
            self._sock.send(message, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            self.stats.dropped_to_worker += 1  # worker stalled: drop, never block the media thread
        except OSError:
            self.stats.dropped_to_worker += 1

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        if self._inbox:
            self._take_inbox()
        playout = self._playout
        while playout:
            item = playout.popleft()
            if isinstance(item, str):
                self._in_prompt = False
                self.stats.marks.append(item)
                continue
            write_frame(frame, item)
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
            self.stats.frames_out += 1
            self._in_prompt = True
            return
        write_frame(frame, self._silence)
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        self.stats.frames_silence += 1
        if self._cut:
            self._cut = self._in_prompt = False
        elif self._in_prompt:
            self.stats.underruns += 1
