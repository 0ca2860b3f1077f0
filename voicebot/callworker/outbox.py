"""The ordered queue of what a call worker sends its UA worker, and the task that sends it.

Audio and marks keep their order (a mark ends the audio queued before it). Control messages that must
overtake queued audio (Flush on barge-in) go to the front. ``drop_speech()`` takes every queued audio
chunk and mark out and says which marks will therefore never play.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Callable
from dataclasses import dataclass

from voicebot.ipc import proto


@dataclass(frozen=True)
class _Item:
    data: bytes
    mark: str | None = None  # a Mark message (its name), else None
    speech: bool = False  # audio or a mark of the bot's speech (dropped by drop_speech)


class Outbox:
    def __init__(self, sock: socket.socket, on_closed: Callable[[], None] = lambda: None) -> None:
        self._sock = sock
        self._on_closed = on_closed  # the UA closed its end: the call is over
        self._items: collections.deque[_Item] = collections.deque()
        self._wake = asyncio.Event()

    def control(self, msg: proto._Msg, urgent: bool = False) -> None:
        item = _Item(proto.encode_control(msg))
        if urgent:
            self._items.appendleft(item)
        else:
            self._items.append(item)
        self._wake.set()

    def audio(self, pcm: bytes) -> None:
        self._items.append(_Item(proto.encode_audio(pcm), speech=True))
        self._wake.set()

    def mark(self, name: str) -> None:
        self._items.append(_Item(proto.encode_control(proto.Mark(mark=name)), mark=name, speech=True))
        self._wake.set()

    def drop_speech(self) -> list[str]:
        """Remove queued speech; return the marks removed with it (they will never play)."""
        kept = [i for i in self._items if not i.speech]
        dropped = [i.mark for i in self._items if i.speech and i.mark is not None]
        self._items = collections.deque(kept)
        return dropped

    async def run(self) -> None:
        """Send forever, in order (owned by the runner's task group; cancelled at the end)."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._items:
                self._wake.clear()
                await self._wake.wait()
            item = self._items.popleft()
            try:
                await loop.sock_sendall(self._sock, item.data)
            except OSError:  # BrokenPipe, ConnectionReset: the UA ended the call and closed the socket
                self._items.clear()
                self._on_closed()
                return

    async def drain(self, timeout: float = 1.0) -> None:
        """Wait (bounded) until everything queued has been sent: before the worker exits."""
        async with asyncio.timeout(timeout):
            while self._items:
                await asyncio.sleep(0.01)
