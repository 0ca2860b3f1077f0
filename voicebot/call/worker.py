"""Per-call worker process: one answered call, driven over the IPC socket by its UA worker.

Started by :class:`voicebot.call.pool.CallWorkerPool` with the socket as an inherited fd. It loads
what it needs, says ``WorkerReady``, waits for ``CallStart``, runs the call handler, and exits when
the call ends or the socket closes. Caller audio is kept (optionally written as WAV with an event
log next to it, for tests and quality review).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import signal
import socket
import sys
import time
import wave
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import structlog

from voicebot import logs
from voicebot.asr.base import AsrBackend, AsrError, Transcript, joined
from voicebot.asr.base import create as create_asr
from voicebot.call.dialplan_logic import DialplanLogic
from voicebot.call.handler import (
    Action,
    ArmTimer,
    CancelAgent,
    EndOfTurn,
    Hangup,
    Play,
    RunAgent,
    RunTool,
    StartRecording,
    StopAudio,
    Transfer,
)
from voicebot.call.listener import (
    Listener,
    TurnEnded,
    TurnPaused,
    TurnResumed,
    TurnSegment,
    TurnStarted,
)
from voicebot.call.logic import make_logic
from voicebot.call.params import CallWorkerParams
from voicebot.call.persist import save_call
from voicebot.call.speculation import Speculation
from voicebot.call.tools import execute as execute_tool
from voicebot.call.turns import TurnClock
from voicebot.errors import ProtocolError
from voicebot.ipc import proto
from voicebot.llm.client import LlmError, load_litellm
from voicebot.llm.client import sentences as llm_sentences
from voicebot.media.audiofile import load_wav
from voicebot.procutil import die_with_parent
from voicebot.tts.base import TtsError
from voicebot.vad.endpointing import VadState

log = logs.get_logger(__name__)
AUDIO_CHUNK_S = 0.5
REDACTED = "<redacted>"  # what logs and call records show of sensitive input (PINs, card numbers)
T = TypeVar("T")


@dataclass
class Recording:
    max_s: float
    after_mark: str
    started: bool = False
    audio: bytearray = field(default_factory=bytearray)


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)


class CallSession:
    """Adapter between the IPC socket and the sans-I/O handler for one call."""

    def __init__(
        self,
        sock: socket.socket,
        params: CallWorkerParams,
        start: proto.CallStart,
        asr: AsrBackend | None = None,
    ) -> None:
        self.sock = sock
        self.params = params
        self.start = start
        self.handler = make_logic(params, start.dialplan, start.call_id, start.caller, start.callee)
        self.timer: asyncio.Task[None] | None = None
        self.recording: Recording | None = None
        self.prompts = params.prompts(self.handler.voice, start.sample_rate)
        self.caller_audio = bytearray()
        self.events: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self.loop = asyncio.get_running_loop()
        self.max_caller_audio = int(params.sample_rate * 2 * min(params.max_call_s, 600))
        self.listener = Listener(start.sample_rate)
        self.asr = asr
        self.asr_lock = asyncio.Lock()
        self.spec = Speculation()
        self.latest: tuple[int, bytes] | None = None  # (turn, audio) waiting for the decoder
        self.speculator: asyncio.Task[None] | None = None
        # Decodes of the open turn's earlier audio, in order: its segments (a long turn) and a turn
        # that ended without an answer before the caller went on (its words join this turn).
        self.parts: list[asyncio.Task[Transcript | None]] = []
        self.ended: tuple[int, list[asyncio.Task[Transcript | None]]] | None = None
        self.speech_end = time.monotonic()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.clock = TurnClock(answered=self.t0)
        self.started_at = datetime.datetime.now(datetime.UTC)
        self.agent_task: asyncio.Task[None] | None = None
        # Only the plan's fixed texts go to the prompt cache: rendered ones may hold caller data,
        # and LLM sentences are never the same twice.
        self.cacheable = frozenset(self.handler.prompts())

    def event(self, kind: str, **data: Any) -> None:
        self.events.append({"t": round(time.monotonic() - self.t0, 3), "kind": kind, **data})

    async def send(self, msg: proto._Msg) -> None:
        await self.loop.sock_sendall(self.sock, proto.encode_control(msg))

    async def act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Play):
                await self.play(action)
            elif isinstance(action, StopAudio):
                await self.send(proto.Flush())
                self.event("flush")
            elif isinstance(action, Transfer):
                self.event("transfer_request", queue=action.queue)
                await self.send(
                    proto.TransferRequest(queue=action.queue, reason=action.reason, headers=action.headers)
                )
            elif isinstance(action, Hangup):
                self.event("hangup_request", reason=action.reason)
                await self.send(proto.HangupRequest(reason=action.reason))
            elif isinstance(action, RunTool):
                self.event("tool_call", integration=action.call.integration, method=action.call.method)
                self.spawn(self.run_tool(action), "tool")
            elif isinstance(action, StartRecording):
                self.recording = Recording(action.max_s, action.after_mark)
            elif isinstance(action, ArmTimer):
                self.disarm()
                self.timer = self.spawn(self.no_input_after(action.seconds), "no-input")
            elif isinstance(action, EndOfTurn):
                self.listener.end_of_turn(action.ms)
            elif isinstance(action, RunAgent):
                self.disarm()  # the bot has the turn: silence now is not the caller's
                self.agent_task = self.spawn(self.run_agent(action), "agent")
            elif isinstance(action, CancelAgent):
                if self.agent_task is not None:
                    self.agent_task.cancel()
                self.event("agent_interrupted")

    async def run_agent(self, action: RunAgent) -> None:
        """Ask the LLM and speak its reply sentence by sentence as it streams in."""
        logic = self.handler
        assert isinstance(logic, DialplanLogic)
        turn, said, ok = action.turn, 0, True
        self.event("agent_turn", messages=len(turn.messages))
        try:
            async for sentence in llm_sentences(self.params.llm, turn.instructions, turn.messages):
                if said == 0:
                    self.clock.decided(time.monotonic(), "llm")  # the first words are ready
                said += 1
                await self.play(logic.agent_sentence(sentence))
        except LlmError as exc:
            ok = False
            log.warning("llm.failed", error=str(exc))
            self.event("llm_failed", error=str(exc)[:200])
        self.event("agent_reply", sentences=said, ok=ok)
        await self.act(logic.on_agent_reply(ok, time.monotonic()))

    async def capture(self, pcm: bytes) -> None:
        """Voicemail: keep caller audio once the 'speak after the tone' prompt has played."""
        rec = self.recording
        if rec is None or not rec.started:
            return
        rec.audio += pcm
        if len(rec.audio) >= rec.max_s * self.start.sample_rate * 2:
            await self.finish_recording()

    async def finish_recording(self) -> None:
        rec, self.recording = self.recording, None
        if rec is None:
            return
        seconds = len(rec.audio) / (self.start.sample_rate * 2)
        path = ""
        if rec.audio:
            folder = (self.params.record_dir or self.params.prompt_dir.parent) / "voicemail"
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{self.start.call_id}-{len(self.events)}.wav"
            await asyncio.to_thread(write_wav, target, bytes(rec.audio), self.start.sample_rate)
            path = str(target)
        self.event("recording", seconds=round(seconds, 2), path=path)
        await self.act(self.handler.on_recording_done(path, seconds, time.monotonic()))

    async def run_tool(self, action: RunTool) -> None:
        ok, data = await asyncio.to_thread(execute_tool, action.call, self.params.tools_allow)
        self.event("tool_result", integration=action.call.integration, ok=ok, error=None if ok else str(data))
        if not ok:
            log.warning("tool.failed", integration=action.call.integration, error=str(data))
        await self.act(self.handler.on_tool_result(ok, data, time.monotonic()))

    def disarm(self) -> None:
        if self.timer is not None and not self.timer.done():
            self.timer.cancel()
        self.timer = None

    async def no_input_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.timer = None
        self.event("no_input", after_s=seconds)
        await self.act(self.handler.on_no_input(time.monotonic()))

    async def play(self, action: Play) -> None:
        """Queue a prompt's audio, sentence by sentence as the TTS makes it, then its mark. A turn's
        first reply audio (and the greeting) is preceded by a ``turn:N`` mark: its wire time."""
        rate = self.start.sample_rate
        sent = 0
        wav = b""
        if action.audio:
            try:
                wav = await asyncio.to_thread(load_wav, Path(action.audio), rate)
            except ValueError as exc:  # checked at load time; the file may have changed since
                log.error("prompt.audio_unusable", error=str(exc))
        chunks: Iterator[bytes] = iter([wav]) if wav else iter(())
        if not wav and action.text:
            chunks = self.prompts.stream(action.text, cache=action.text in self.cacheable)
        step = int(rate * AUDIO_CHUNK_S) * 2
        try:
            while (pcm := await asyncio.to_thread(next, chunks, None)) is not None:
                if sent == 0 and pcm:
                    mark = self.clock.greeting_mark() or self.clock.reply_mark(time.monotonic())
                    if mark is not None:
                        await self.send(proto.Mark(mark=mark))
                for i in range(0, len(pcm), step):
                    await self.loop.sock_sendall(self.sock, proto.encode_audio(pcm[i : i + step]))
                sent += len(pcm)
        except TtsError as exc:
            # Say nothing rather than stall: the mark below still moves the dialplan on.
            log.error("tts.failed", error=str(exc))
            self.event("tts_failed", error=str(exc)[:200])
        await self.send(proto.Mark(mark=action.mark))
        self.event("play", mark=action.mark, text=action.text, ms=sent * 500 // rate)

    async def listen(self, pcm: bytes) -> None:
        """Caller audio -> turn events -> barge-in, speculative and final recognition.

        Whisper does not stream, so the whole turn so far is decoded when the caller pauses
        (Listener.pause_ms), one decode at a time, always on the newest pause. If no speech followed
        that pause, its transcript is the turn's (voicebot/call/speculation.py): ready soon after
        the caller stopped, and acted on at once when it is already a complete answer.
        """
        for ev in self.listener.feed(pcm):
            if isinstance(ev, TurnStarted):
                self.parts = self.carry_over()
                self.spec.started()
                self.event("speech_started", audio_t=round(ev.at, 3))
                self.disarm()  # the caller is answering
                actions = self.handler.on_speech_started(time.monotonic())
                if actions:
                    opened = self.listener.endpointer.params.start_ms / 1000
                    self.event("barge_in", audio_t=round(ev.at + opened, 3))
                await self.act(actions)
            elif isinstance(ev, TurnPaused):
                self.speech_end = time.monotonic() - self.listener.pause_frames * 0.02
                self.spec.paused(len(ev.audio))
                if self.asr is not None:
                    self.latest = (self.spec.turn, ev.audio)
                    if self.speculator is None or self.speculator.done():
                        self.speculator = self.spawn(self.speculate(), "asr-spec")
            elif isinstance(ev, TurnResumed):
                self.spec.resumed()  # a decode cut at that pause no longer covers the turn
            elif isinstance(ev, TurnSegment):
                self.spec.segmented()
                self.event("speech_segment", audio_t=round(ev.at, 3), index=ev.index)
                if self.asr is not None:
                    self.parts.append(self.spawn(self.transcribe(ev.audio), "asr-segment"))
            elif isinstance(ev, TurnEnded):
                self.event("speech_ended", audio_t=round(ev.at, 3), duration_s=ev.duration_s)
                await self.act(self.handler.on_speech_ended(time.monotonic(), self.asr is not None))
                turn = self.spec.turn
                if self.asr is not None and self.spec.current(turn):
                    parts = [*self.parts, self.spawn(self.decode_tail(turn, ev.audio), "asr-final")]
                    self.ended = (turn, parts)
                    self.spawn(self.finish_turn(turn, parts), "asr-turn")
                self.parts = []

    def carry_over(self) -> list[asyncio.Task[Transcript | None]]:
        """A new turn starts: if the last one ended but has no answer yet, its decodes become the
        first parts of this one (the caller paused, then went on), rather than being thrown away."""
        ended, self.ended = self.ended, None
        if ended is None or not self.spec.current(ended[0]):
            return []
        self.event("turn_joined", parts=len(ended[1]))
        log.info("asr.turn_joined", parts=len(ended[1]))
        return ended[1]

    def spawn(self, coro: Coroutine[Any, Any, T], kind: str) -> asyncio.Task[T]:
        """A named task owned by this session (cancelled when the call ends)."""
        task = asyncio.create_task(coro, name=f"{kind}-{self.start.call_id[:8]}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def transcribe(self, audio: bytes) -> Transcript | None:
        """One decode at a time, in the order asked (asyncio.Lock is FIFO), off the event loop."""
        assert self.asr is not None
        hints = self.handler.hints()
        async with self.asr_lock:
            try:
                return await asyncio.to_thread(self.asr.transcribe, audio, self.start.sample_rate, hints)
            except AsrError as exc:
                log.warning("asr.failed", error=str(exc))
                self.event("asr_failed", error=str(exc))
                return None

    async def speculate(self) -> None:
        while self.latest is not None:
            (turn, audio), self.latest = self.latest, None
            result = await self.transcribe(audio)
            if result is None or not self.spec.current(turn):
                continue
            whole = self.spec.guessed(turn, len(audio), result)
            shown = REDACTED if self.handler.sensitive else result.text
            self.event("asr_guess", audio_s=result.audio_s, decode_s=result.decode_s, text=shown, whole=whole)
            # Act before the turn has officially ended when the caller is still silent after a
            # decode of everything they said and it already answers the step ("sales").
            still_silent = self.listener.endpointer.state is VadState.STOPPING
            complete = (
                whole
                and not self.parts  # a turn with earlier parts is answered by all of them together
                and self.latest is None
                and still_silent
                and self.handler.expects(result.text)
            )
            if complete and self.spec.take(turn):
                self.event("early_endpoint")
                await self.deliver(result)

    async def decode_tail(self, turn: int, audio: bytes) -> Transcript | None:
        """The turn's audio after its last segment: the speculative decode if it covers all of it."""
        if self.speculator is not None:
            await asyncio.gather(self.speculator, return_exceptions=True)
        guess = self.spec.final() if self.spec.current(turn) else None
        return guess or await self.transcribe(audio)

    async def finish_turn(self, turn: int, parts: list[asyncio.Task[Transcript | None]]) -> None:
        """Wait for every part of the turn (segments, then the tail) and answer with all their words."""
        results = [await part for part in parts]
        if not self.spec.current(turn):
            return  # answered early, or joined into the caller's next turn (carry_over)
        result = joined(results)
        if len(parts) > 1:
            self.event("turn_stitched", parts=len(parts), failed=sum(r is None for r in results))
        if result is not None and self.spec.take(turn):
            await self.deliver(result)

    async def deliver(self, result: Transcript) -> None:
        gap_ms = round((time.monotonic() - self.speech_end) * 1000)
        shown = REDACTED if self.handler.sensitive else result.text
        self.event(
            "transcript",
            text=shown,
            confidence=result.confidence,
            decode_s=result.decode_s,
            end_to_decision_ms=gap_ms,
        )
        log.info(
            "call.transcript",
            text=shown,
            confidence=result.confidence,
            decode_s=result.decode_s,
            end_to_decision_ms=gap_ms,
        )
        self.turn_record(self.clock.abandon())  # the previous turn never got a spoken reply
        self.clock.transcribed(self.speech_end, time.monotonic())
        actions = self.handler.on_transcript(result.text, result.confidence, time.monotonic())
        if any(isinstance(a, RunAgent) for a in actions):
            return await self.act(actions)  # the decision is the LLM's first sentence
        self.clock.decided(
            time.monotonic(), "dialplan" if isinstance(self.handler, DialplanLogic) else "builtin"
        )
        await self.act(actions)

    def turn_record(self, record: dict[str, Any] | None, export: bool = True) -> None:
        """Keep a finished turn with the call, log it, and (``export``) hand it to the UA worker's
        metrics."""
        if record is None:
            return
        self.event("turn", **record)
        log.info("call.turn", **record)
        if export:
            self.spawn(self.send(proto.TurnMetrics(**record)), "metrics")

    async def handle(self, msg: proto.Control | bytes) -> bool:
        """Dispatch one message; return False when the call is over."""
        now = time.monotonic()
        if isinstance(msg, bytes):
            if len(self.caller_audio) < self.max_caller_audio:
                # the kept caller audio is silent while a PIN or card number is being said
                self.caller_audio += bytes(len(msg)) if self.handler.sensitive else msg
            await self.listen(msg)
            await self.capture(msg)
            return True
        if isinstance(msg, proto.DtmfReceived):
            digit = REDACTED if self.handler.sensitive else msg.digit
            log.info("call.dtmf", digit=digit, method=msg.method)
            self.event("dtmf", digit=digit, method=msg.method)
            self.disarm()
            if self.recording is not None and self.recording.started and msg.digit == "#":
                await self.finish_recording()
                return True
            await self.act(self.handler.on_dtmf(msg.digit, now))
        elif isinstance(msg, proto.PlayedMark):
            if msg.mark.startswith("turn:"):
                self.turn_record(self.clock.mark_played(msg.mark, now))
                return True
            self.event("played", mark=msg.mark)
            if self.recording is not None and msg.mark == self.recording.after_mark:
                self.recording.started = True  # the tone / prompt is over: the message starts now
            await self.act(self.handler.on_played(msg.mark, now))
        elif isinstance(msg, proto.TransferResult):
            self.event("transfer_result", queue=msg.queue, ok=msg.ok, status=msg.status, reason=msg.reason)
            why = "" if msg.ok else f"{msg.status} {msg.reason}".strip()  # variable transfer_reason
            await self.act(self.handler.on_transfer_result(msg.queue, msg.ok, now, why))
        elif isinstance(msg, proto.CallEnded):
            self.event("call_ended", reason=msg.reason)
            return False
        else:
            log.warning("ipc.unexpected", type=getattr(msg, "type", "?"))
        return True

    def save(self) -> None:
        """Write caller audio and the event log (only when a record_dir is configured)."""
        if self.params.record_dir is None:
            return
        out = self.params.record_dir
        out.mkdir(parents=True, exist_ok=True)
        pcm = np.frombuffer(bytes(self.caller_audio), dtype="<i2")
        rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0
        with wave.open(str(out / f"{self.start.call_id}.wav"), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.start.sample_rate)
            wav.writeframes(bytes(self.caller_audio))
        summary = {
            "call": self.start.model_dump(),
            "digits": self.handler.digits,
            "caller_audio_s": round(pcm.size / self.start.sample_rate, 3),
            "caller_audio_rms": round(rms, 1),
            "events": self.events,
            "worker_pid": os.getpid(),
        }
        tmp = out / f".{self.start.call_id}.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(out / f"{self.start.call_id}.json")


async def recv(sock: socket.socket) -> proto.Control | bytes | None:
    data = await asyncio.get_running_loop().sock_recv(sock, proto.MAX_MESSAGE + 1)
    if not data:
        return None
    return proto.decode(data)


async def serve(sock: socket.socket, params: CallWorkerParams, asr: AsrBackend | None = None) -> int:
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, proto.encode_control(proto.WorkerReady(pid=os.getpid())))
    first = await recv(sock)
    if first is None:
        return 0  # pool closed before we got a call: normal at shutdown
    if not isinstance(first, proto.CallStart):
        log.error("ipc.protocol", why="first message was not call_start")
        return 1
    structlog.contextvars.bind_contextvars(call_id=first.call_id, sip_call_id=first.sip_call_id)
    log.info("call.started", trunk=first.trunk, caller=first.caller, callee=first.callee)
    session = CallSession(sock, params, first, asr)
    try:
        await session.act(session.handler.start(time.monotonic()))
        async with asyncio.timeout(params.max_call_s):
            while True:
                try:
                    msg = await recv(sock)
                except ProtocolError as exc:
                    log.warning("ipc.bad_message", error=str(exc))
                    continue
                if msg is None or not await session.handle(msg):
                    break
    except TimeoutError:
        await session.send(proto.HangupRequest(reason="max call duration"))
    except (BrokenPipeError, ConnectionResetError):
        session.event("ua_gone")
    finally:
        session.turn_record(session.clock.abandon(), export=False)  # the call is over: no UA to tell
        for task in list(session.tasks):
            task.cancel()
        session.save()
        if params.database_url:
            await save_call(params.database_url, first, session.started_at, session.events, params.redact_pii)
        log.info("call.worker_done", digits=len(session.handler.digits))
    return 0


def load_asr(params: CallWorkerParams) -> AsrBackend | None:
    """The configured recogniser, loaded once per worker process (None: keys only)."""
    if params.asr_backend == "vosk":
        return create_asr("vosk", model_dir=params.vosk_model or None)
    if params.asr_backend:
        return create_asr(
            params.asr_backend,
            model_dir=params.model_dir / "whisper-base",
            threads=params.asr_threads,
            min_window_s=params.whisper_window_s,
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicebot-call-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--params", type=Path, required=True)
    args = parser.parse_args(argv)
    die_with_parent(signal.SIGKILL)  # our UA worker is gone, and with it the call
    # Ctrl-C in a terminal hits the whole process group; the UA worker decides when a call ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    params = CallWorkerParams.model_validate_json(args.params.read_text())
    logs.configure(params.log_level, params.log_format, params.redact_pii, process="call")
    # Load the recogniser before saying ready: the pool hides the load time from callers.
    asr = load_asr(params)
    if params.llm.configured:
        load_litellm()  # seconds of import: paid here, not by the caller's first agent turn
        # LLM sentences are never cached: load and warm the TTS now, not at the first reply.
        try:
            params.prompts().warm()
        except TtsError as exc:
            log.warning("tts.warm_failed", error=str(exc))
    sock = socket.socket(fileno=args.fd)
    sock.setblocking(False)
    try:
        return asyncio.run(serve(sock, params, asr))
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
