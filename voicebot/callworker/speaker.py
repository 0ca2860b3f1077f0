"""The speaker: prompts in the order the engine asked, synthesised ahead and queued to the caller.

One task speaks one prompt at a time: sentence by sentence from the TTS (off the event loop), each
chunk queued at once, so the first sentence plays while the next is synthesised. ``stop()`` (barge-in)
cancels the prompt being synthesised, forgets the ones waiting and returns the marks that will never
play. A voice that fails is replaced by the next in the chain (the configured backend's default
voice, then the fallback backend, e.g. espeak); if every voice fails, the prompt is skipped (its mark
still follows, so the plan goes on) and the engine hears SpeakFailed.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from voicebot.callworker.outbox import Outbox
from voicebot.engine import effects as fx
from voicebot.engine import events as ev
from voicebot.logs import get_logger
from voicebot.media.audiofile import load_wav
from voicebot.media.prompts import Prompts
from voicebot.tts.spoken import naturally

log = get_logger(__name__)
AUDIO_CHUNK_S = 0.5


class Speaker:
    def __init__(
        self,
        outbox: Outbox,
        voices: Sequence[Prompts],
        sample_rate: int,
        report: Callable[[ev.Event], None],
        note: Callable[[str, dict[str, object]], None],
    ) -> None:
        self.outbox = outbox
        self.voices = list(voices)
        self.rate = sample_rate
        self.report = report  # back to the engine
        self.note = note  # to the call's record
        self._queue: collections.deque[fx.Speak] = collections.deque()
        self._wake = asyncio.Event()
        self._current: tuple[fx.Speak, asyncio.Task[None]] | None = None
        self._sent_mark: set[int] = set()  # requests whose mark is already queued

    def say(self, speak: fx.Speak) -> None:
        self._queue.append(speak)
        self._wake.set()

    def stop(self) -> list[str]:
        """Barge-in: cancel and forget; the marks that will not be queued at all."""
        dropped = [s.mark for s in self._queue]
        self._queue.clear()
        if self._current is not None:
            speak, task = self._current
            if speak.req not in self._sent_mark:
                dropped.append(speak.mark)
            task.cancel()
            self._current = None
        return dropped

    async def run(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            speak = self._queue.popleft()
            task = asyncio.create_task(self._speak(speak), name=f"speak-{speak.req}")
            self._current = (speak, task)
            await asyncio.wait({task})  # never raises: a cancelled prompt is simply over
            if self._current is not None and self._current[1] is task:
                self._current = None

    async def _speak(self, speak: fx.Speak) -> None:
        sent = 0
        step = int(self.rate * AUDIO_CHUNK_S) * 2
        errors: list[str] = []
        for voice, chunks in self._sources(speak):
            try:
                while (pcm := await asyncio.to_thread(next, chunks, None)) is not None:
                    if sent == 0 and pcm:
                        if speak.lead_mark is not None:
                            self.outbox.mark(speak.lead_mark)
                        self.report(ev.SpeechReady(speak.req))
                    for i in range(0, len(pcm), step):
                        self.outbox.audio(pcm[i : i + step])
                    sent += len(pcm)
                made = getattr(voice, "synthesised", None)
                if made is not None and sent:  # synthesised for this call, not from the cache: a cost
                    self.note("tts", {"voice": made[0], "chars": made[1]})
                break
            except Exception as exc:  # TtsError, a broken file, a backend that would not load...
                errors.append(str(exc)[:200])
                if sent:
                    break  # half a prompt was said: do not start it again in another voice
                log.warning("tts.voice_failed", error=str(exc)[:200])
        if not sent and errors:
            self.report(ev.SpeakFailed(speak.req, "; ".join(errors)))
        self._sent_mark.add(speak.req)
        self.outbox.mark(speak.mark)
        self.note("play", {"mark": speak.mark, "text": speak.text, "ms": sent * 500 // self.rate})

    def _wav(self, path: Path) -> Iterator[bytes]:
        yield load_wav(path, self.rate)  # ValueError (unusable file): the text is spoken instead

    def _sources(self, speak: fx.Speak) -> Iterator[tuple[Prompts | None, Iterator[bytes]]]:
        """The prompt's audio: its WAV, else its text in each voice of the chain, in order."""
        if speak.audio:
            yield None, self._wav(Path(speak.audio))  # checked at load time; the file may have changed
        if speak.text:
            text = naturally(speak.text)  # "2026-12-08 at 15:00" -> "Tuesday, December 8 at 3 PM"
            for voice in self.voices:
                yield voice, voice.stream(text, cache=speak.cache and text == speak.text)
