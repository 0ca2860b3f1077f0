"""The effects runner: the I/O around one call's engine, every task owned by one TaskGroup.

One task reads the IPC socket and feeds the engine; it never waits on an effect. Effects run in
owned tasks: the speaker (TTS, ordered, cancelled at once on barge-in), the decoder (one decode at
a time, off the event loop), the LLM streamer, tool calls, recordings, the sender (ordered IPC out),
the timer (the engine's deadlines) and the heartbeat. Each effect's outcome, failure included, goes
back to the engine as an event; nothing an effect does can raise into the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Literal

from voicebot import logs
from voicebot.asr.base import AsrBackend
from voicebot.callworker.callbacks import book_callback
from voicebot.callworker.outbox import Outbox
from voicebot.callworker.params import CallWorkerParams
from voicebot.callworker.speaker import Speaker
from voicebot.callworker.tools import execute as execute_tool
from voicebot.engine import effects as fx
from voicebot.engine import events as ev
from voicebot.engine.engine import CallEngine
from voicebot.errors import ProtocolError
from voicebot.ipc import proto
from voicebot.llm import answers
from voicebot.llm.answers import AnswerCache
from voicebot.llm.client import ToolRequest
from voicebot.llm.client import reply as llm_reply
from voicebot.media.audiofile import wav_bytes
from voicebot.media.frames import frame_bytes
from voicebot.media.prompts import Prompts

log = logs.get_logger(__name__)
_FAILED_STAGE: dict[str, Literal["asr", "tts", "llm", "tool"]] = {
    "asr_failed": "asr",
    "tts_failed": "tts",
    "llm_failed": "llm",
}
HEARTBEAT_S = 0.5


class CallRunner:
    def __init__(
        self,
        sock: socket.socket,
        params: CallWorkerParams,
        start: proto.CallStart,
        engine: CallEngine,
        asr: AsrBackend | None,
        voices: list[Prompts],
    ) -> None:
        self.sock = sock
        self.params = params
        self.start = start
        self.engine = engine
        self.asr = asr
        self.t0 = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self.caller_audio = bytearray()
        self.max_caller_audio = int(start.sample_rate * 2 * min(params.max_call_s, 600))
        self.frame_bytes = frame_bytes(start.sample_rate)  # 20 ms
        self.outbox = Outbox(sock, on_closed=self._ua_gone)
        self.speaker = Speaker(outbox=self.outbox, voices=voices, sample_rate=start.sample_rate,
                               report=self.feed, note=self.note)  # fmt: skip
        self.decodes: asyncio.Queue[fx.Decode] = asyncio.Queue()
        self.jobs: dict[int, asyncio.Task[None]] = {}  # LLM, tool and recording tasks by request
        self.tg: asyncio.TaskGroup | None = None
        self.timer_wake = asyncio.Event()
        self.armed_deadline: float | None = None  # what _timers waits for now
        self.over = asyncio.Event()
        self.ended_reason: str | None = None

    # -- the call ---------------------------------------------------------------------------------
    async def run(self) -> None:
        """Run the call until it is over; every task is cancelled and awaited before this returns."""
        async with asyncio.TaskGroup() as tg:
            self.tg = tg
            background = [
                tg.create_task(self.outbox.run(), name="ipc-send"),
                tg.create_task(self.speaker.run(), name="speaker"),
                tg.create_task(self._decoder(), name="decoder"),
                tg.create_task(self._timers(), name="timers"),
                tg.create_task(self._heartbeat(), name="heartbeat"),
            ]
            reader = tg.create_task(self._reader(), name="ipc-read")
            now = time.monotonic()
            self.apply(self.engine.start(now), now)
            await self.over.wait()
            reader.cancel()
            await self._finish_jobs()
            with contextlib.suppress(TimeoutError):
                await self.outbox.drain()
            for task in [*background, *self.jobs.values()]:
                task.cancel()

    def feed(self, event: ev.Event) -> None:
        """An event for the engine (from the reader or an effect); its effects start at once."""
        now = time.monotonic()
        try:
            effects = self.engine.handle(event, now)
        except Exception:
            # A bug in the engine: its state cannot be trusted. Exit; the UA worker sees the death
            # and the call goes on in a fresh worker from the last checkpoint.
            log.exception("engine.crashed", on=type(event).__name__)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(70)
        self.apply(effects, now)

    def apply(self, effects: list[fx.Effect], now: float) -> None:
        """Start each effect; never waits (queues, tasks, the outbox). ``now`` is when the engine
        decided them: the events they note carry that time, not when this loop got to them."""
        for e in effects:
            if isinstance(e, fx.Speak):
                self.speaker.say(e)
            elif isinstance(e, fx.StopSpeech):
                dropped = self.speaker.stop() + self.outbox.drop_speech()
                self.outbox.control(proto.Flush(), urgent=True)
                for mark in dropped:
                    self.apply(self.engine.handle(ev.Dropped(mark), now), now)
            elif isinstance(e, fx.Decode):
                self.decodes.put_nowait(e)
            elif isinstance(e, fx.AskLlm):
                self._job(e.req, self._llm(e), f"llm-{e.req}")
            elif isinstance(e, fx.CancelLlm | fx.CancelTool):
                job = self.jobs.pop(e.req, None)
                if job is not None:
                    job.cancel()
            elif isinstance(e, fx.CallTool):
                self._job(e.req, self._tool(e), f"tool-{e.req}")
            elif isinstance(e, fx.BookCallback):
                self._job(e.req, self._book(e), f"callback-{e.req}")
            elif isinstance(e, fx.SaveRecording):
                self._job(e.req, self._save_recording(e), f"recording-{e.req}")
            elif isinstance(e, fx.Transfer):
                self.outbox.control(proto.TransferRequest(queue=e.queue, reason=e.reason, headers=e.headers))
            elif isinstance(e, fx.Hangup):
                self.outbox.control(proto.HangupRequest(reason=e.reason[:200]))
            elif isinstance(e, fx.Checkpoint):
                self._checkpoint(e.state, self.engine.progress)
            elif isinstance(e, fx.TurnMetrics):
                if not self.over.is_set():
                    self.outbox.control(proto.TurnMetrics(**e.record))
            elif isinstance(e, fx.Note):
                self.note(e.kind, e.data, e.log, at=now)
                stage = _FAILED_STAGE.get(e.kind)
                if e.kind == "tool_result" and not e.data.get("ok", True):
                    stage = "tool"
                if stage and not self.over.is_set():
                    self.outbox.control(proto.StageFailed(stage=stage))  # the node's error counters
        if self.engine.next_deadline() != self.armed_deadline:
            self.timer_wake.set()  # the next deadline moved: re-arm (not on every caller frame)

    def note(
        self, kind: str, data: dict[str, Any], log_as: str | None = None, at: float | None = None
    ) -> None:
        t = time.monotonic() if at is None else at
        self.events.append({"t": round(t - self.t0, 3), "kind": kind, **data})
        if log_as:
            log.info(log_as, **data)

    def _ua_gone(self) -> None:
        """The call is over: the UA said so (CallEnded), or closed the socket without a word."""
        if self.over.is_set():
            return
        if self.ended_reason is None:
            self.note("ua_gone", {})
        self.feed(ev.CallEnded(self.ended_reason or "ua gone"))
        self.over.set()

    # -- reading ----------------------------------------------------------------------------------
    async def _reader(self) -> None:
        """Read the UA's messages until the call is over. One reader callback stays registered for
        the whole call and takes every message that is there when it runs (50 caller frames a
        second: a future, a timeout and a reader registration per frame cost more than the frame's
        own work did)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            try:
                while not done.done():
                    try:
                        data = self.sock.recv(proto.MAX_MESSAGE + 1)
                    except (BlockingIOError, InterruptedError):
                        return
                    except (ConnectionResetError, BrokenPipeError):
                        data = b""
                    if not data:
                        done.set_result(None)
                        return
                    try:
                        msg = proto.decode(data)
                    except ProtocolError as exc:
                        log.warning("ipc.bad_message", error=str(exc))
                        continue
                    if self._take(msg):
                        done.set_result(None)
            except Exception as exc:  # raised in the reading task, as when it read itself
                if not done.done():
                    done.set_exception(exc)

        fd = self.sock.fileno()
        loop.add_reader(fd, readable)
        try:
            await done
        finally:
            loop.remove_reader(fd)
        self._ua_gone()

    def _take(self, msg: proto.Control | bytes) -> bool:
        """One message in; True when the call is over."""
        if isinstance(msg, bytes):
            if len(self.caller_audio) < self.max_caller_audio:
                # the kept caller audio is silent while a PIN or card number is being said
                self.caller_audio += bytes(len(msg)) if self.engine.sensitive else msg
            n = self.frame_bytes  # the UA sends a few 20 ms frames per message
            for i in range(0, len(msg), n):
                self.feed(ev.Audio(msg[i : i + n]))
        elif isinstance(msg, proto.DtmfReceived):
            self.feed(ev.Key(msg.digit, msg.method))
        elif isinstance(msg, proto.PlayedMark):
            self.feed(ev.Played(msg.mark))
        elif isinstance(msg, proto.DroppedMark):
            self.feed(ev.Dropped(msg.mark))
        elif isinstance(msg, proto.TransferResult):
            self.feed(ev.TransferDone(msg.queue, msg.ok, msg.status, msg.reason))
        elif isinstance(msg, proto.CallEnded):
            self.ended_reason = msg.reason
            return True
        else:
            log.warning("ipc.unexpected", type=getattr(msg, "type", "?"))
        return False

    # -- effects ----------------------------------------------------------------------------------
    def _job(self, req: int, coro: Awaitable[None], name: str) -> None:
        assert self.tg is not None
        task = self.tg.create_task(self._guarded(coro), name=name)
        self.jobs[req] = task
        task.add_done_callback(lambda t: self._job_done(req, t))

    def _job_done(self, req: int, task: asyncio.Task[None]) -> None:
        if self.jobs.get(req) is task:
            del self.jobs[req]

    async def _guarded(self, coro: Awaitable[None]) -> None:
        """An effect task never takes the call down: what it raises is logged (each effect reports its
        own failure to the engine before this)."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("effect.crashed")

    async def _decoder(self) -> None:
        """One decode at a time, in the order asked, off the event loop."""
        while True:
            d = await self.decodes.get()
            if self.asr is None or d.req not in self.engine.decodes:
                continue  # given up on while it waited
            try:
                result = await asyncio.to_thread(
                    self.asr.transcribe, d.audio, self.start.sample_rate, d.hints
                )
            except Exception as exc:  # any failure of the recogniser: the step's no-match path
                self.feed(ev.DecodeFailed(d.req, f"{type(exc).__name__}: {exc}"))
                continue
            self.feed(ev.Decoded(d.req, result))

    async def _llm(self, ask: fx.AskLlm) -> None:
        tool_call: tuple[str, str, str] | None = None
        usage: dict[str, Any] | None = None
        cfg = self.params.llm
        cache_key, cache = None, None
        if cfg.answer_cache_ttl_s and self.params.breaker_dir is not None:  # run_dir/answers
            cache_key = answers.key(cfg.model, ask.instructions, ask.messages, ask.tools)
            cache = AnswerCache(self.params.breaker_dir.parent / "answers", cfg.answer_cache_ttl_s)
        cached = cache.get(cache_key) if cache is not None and cache_key else None
        if cached is not None:
            for sentence in cached:
                self.feed(ev.LlmSentence(ask.req, sentence))
            self.feed(ev.LlmDone(ask.req, True, usage={"model": cfg.model, "cached": True}))
            return
        said: list[str] = []
        try:
            async for item in llm_reply(
                self.params.llm, ask.instructions, ask.messages, ask.tools, self.params.breaker_dir
            ):
                if isinstance(item, str):
                    said.append(item)
                    self.feed(ev.LlmSentence(ask.req, item))
                elif isinstance(item, ToolRequest):
                    tool_call = (item.id, item.name, item.arguments)
                else:
                    usage = dataclasses.asdict(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # LlmError, or anything the client raised: the step's error path
            self.feed(ev.LlmDone(ask.req, False, f"{type(exc).__name__}: {exc}"))
            return
        if cache is not None and cache_key and tool_call is None and usage and usage["complete"]:
            cache.put(cache_key, said)  # a whole reply (a broken stream ends without usage)
        self.feed(ev.LlmDone(ask.req, True, tool_call=tool_call, usage=usage))

    async def _tool(self, call: fx.CallTool) -> None:
        try:
            ok, data = await execute_tool(
                call.call, self.params.tools_allow, call.key, trace_id=self.start.call_id
            )
        except Exception as exc:
            ok, data = False, f"{call.call.integration}: {type(exc).__name__}"
        self.feed(ev.ToolDone(call.req, ok, data))

    async def _book(self, e: fx.BookCallback) -> None:
        ok, data = await book_callback(self.params, self.start, e.callback, e.key)
        self.feed(ev.ToolDone(e.req, ok, data))

    async def _save_recording(self, rec: fx.SaveRecording) -> None:
        path = ""
        if rec.pcm:
            folder = (self.params.record_dir or self.params.prompt_dir.parent) / "voicemail"
            target = folder / f"{self.start.call_id}-{rec.req}.wav"
            try:
                await asyncio.to_thread(write_wav, target, rec.pcm, self.start.sample_rate)
                path = str(target)
            except OSError as exc:
                log.error("recording.save_failed", error=str(exc))
        self.feed(ev.RecordingSaved(rec.req, path, len(rec.pcm) / (self.start.sample_rate * 2)))

    async def _finish_jobs(self) -> None:
        """At the end of the call: a recording being saved is kept; LLM and tool calls are stopped."""
        saving = [t for t in self.jobs.values() if t.get_name().startswith("recording-")]
        if saving:
            await asyncio.wait(saving, timeout=5.0)

    def _checkpoint(self, state: dict[str, Any], progress: int) -> None:
        text = json.dumps(state, separators=(",", ":"), default=str)
        if len(text) > proto.CHECKPOINT_MAX:
            log.warning("call.checkpoint_too_large", bytes=len(text))
            return
        if not self.over.is_set():
            self.outbox.control(proto.Checkpoint(state=text, progress=progress))

    async def _timers(self) -> None:
        while True:
            deadline = self.armed_deadline = self.engine.next_deadline()
            self.timer_wake.clear()
            delay = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.timer_wake.wait()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self.apply(self.engine.on_timer(now), now)

    async def _heartbeat(self) -> None:
        while True:
            self.outbox.control(proto.Heartbeat())
            await asyncio.sleep(HEARTBEAT_S)

    # -- after the call ---------------------------------------------------------------------------
    def save(self, extra: dict[str, Any]) -> None:
        """Write caller audio and the event log (only when a record_dir is configured)."""
        out = self.params.record_dir
        if out is None:
            return
        import numpy as np

        out.mkdir(parents=True, exist_ok=True)
        pcm = np.frombuffer(bytes(self.caller_audio), dtype="<i2")
        rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0
        no = self.start.worker_no
        name = self.start.call_id if no == 1 else f"{self.start.call_id}-w{no}"
        write_wav(out / f"{name}.wav", bytes(self.caller_audio), self.start.sample_rate)
        summary = {
            "call": self.start.model_dump(exclude={"resume"}),
            "digits": self.engine.digits,
            "caller_audio_s": round(pcm.size / self.start.sample_rate, 3),
            "caller_audio_rms": round(rms, 1),
            "events": self.events,
            **extra,
        }
        tmp = out / f".{name}.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(out / f"{name}.json")


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(pcm, rate))
