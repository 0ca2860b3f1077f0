"""One call's turn engine (sans-I/O): every event of the call in, every effect out, every timer owned.

It owns the dialplan interpreter, the hearing side (VAD, endpointing, speculation, decode parts:
voicebot/engine/hearing.py), the turn clock, barge-in bookkeeping, the no-input and digit timers,
recordings and the watchdogs of its effects. Time is an argument (``now``, monotonic seconds): tests
drive it with scripted events, the effects runner with real ones. ``next_deadline()`` says when
``on_timer(now)`` is due, the way aioquic's connection owns its timers.

Every failure comes back as an event and takes a defined path: a decode that failed (or took longer
than its budget) -> the step's no-match reprompt; an LLM or tool that failed, crashed or overran ->
the step's error path; a voice that could not speak -> the plan goes on. After each step the engine
emits a Checkpoint from which a new worker resumes the call (``resume=``).
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field
from typing import Any

from voicebot.asr.base import Transcript
from voicebot.dialplan import interpreter as ip
from voicebot.dialplan.plan import Plan
from voicebot.dialplan.verbs.agent import Agent
from voicebot.dialplan.verbs.registry import PLACEHOLDER
from voicebot.engine import effects as fx
from voicebot.engine import events as ev
from voicebot.engine.hearing import Answer, DecodeRequest, Ended, Guess, Heard, Hearing, Resumed, Started
from voicebot.engine.turns import TurnClock
from voicebot.llm.honesty import claims_done

REDACTED = "<redacted>"  # what logs and call records show of sensitive input (PINs, card numbers)
RESUME_APOLOGY = "Sorry, I lost you for a moment."
GIVE_UP = "Sorry, we are having technical difficulties. Please call again later."
BOOKING_BUDGET_S = 8.0  # a callback booking (one database write, 5 s timeout) before its error path
ENGINE_TEXTS = (RESUME_APOLOGY, GIVE_UP)  # said by the engine itself: warmed into the prompt cache too


@dataclass(frozen=True)
class EngineConfig:
    """Budgets and switches for one call (from the call worker's parameters)."""

    sample_rate: int = 8000
    recognise: bool = True  # a recogniser is configured (else: keys only)
    llm_early: bool = True  # at an agent step, ask the LLM at the caller's pause (see _early_llm)
    max_call_s: float = 3600.0
    decode_budget_s: float = 15.0  # a decode that has not come back by then counts as failed
    llm_first_sentence_s: float = 15.0  # the LLM's first sentence, else the step's error path
    llm_turn_s: float = 90.0  # a whole LLM reply
    tool_slack_s: float = 5.0  # on top of an integration's own timeout x attempts


@dataclass(frozen=True)
class CallInfo:
    call_id: str = ""
    caller: str = ""
    called: str = ""
    today: str = ""  # ISO date ("tomorrow" is relative to it); "" = today
    direction: str = "inbound"  # "outbound": a call the bot placed, starting at ``entry``
    entry: str = ""
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass
class _EarlyLlm:
    """An LLM request made at a caller's pause (Engine._early_llm), waiting to be the turn's reply."""

    req: int
    text: str  # the transcript it was asked with
    turn: ip.AgentTurn
    sentences: list[str] = field(default_factory=list)
    done: ev.LlmDone | None = None


@dataclass(frozen=True)
class Resume:
    """A checkpoint to go on from (the call's previous worker died) and how often that happened at
    this checkpoint already."""

    state: dict[str, Any]
    deaths: int = 1


class CallEngine:
    """One per call. ``start``/``handle``/``on_timer`` return the effects to carry out now."""

    def __init__(self, plan: Plan, info: CallInfo, cfg: EngineConfig, resume: Resume | None = None) -> None:
        self.plan = plan
        self.info = info
        self.cfg = cfg
        saved = resume.state if resume else {}
        state = ip.State.model_validate(saved["interpreter"]) if "interpreter" in saved else None
        self.it = ip.Interpreter(plan, state)
        self.resume = resume
        self.req = int(saved.get("req", 0))
        self.hearing = Hearing(cfg.sample_rate, cfg.recognise, self._next_req)
        self.clock: TurnClock | None = None
        self.cacheable = frozenset(plan_prompts(plan)) | frozenset(ENGINE_TEXTS)
        self.digits: list[str] = list(saved.get("digits", []))
        self.playing: dict[str, bool] = {}  # mark -> barge-in allowed, for audio not yet played
        self.speaking: set[int] = set()  # Speak requests whose first audio is not yet queued
        self.collect: ip.StartCollect | None = None
        self.collect_after: str | None = None  # arm the no-input timer once this mark has played
        self.answering = False  # the caller is mid-turn: no no-input timer until we know what they said
        self.no_input_at: float | None = None
        self.end_at = 0.0
        self.agent: tuple[int, ip.AgentTurn] | None = None  # the LLM turn in flight
        self.agent_said: list[str] = []
        self.agent_marks = 0
        self.agent_deadline: float | None = None
        self.early: _EarlyLlm | None = None  # an LLM request started at a pause, not yet the turn's
        self.tool: tuple[int, float] | None = None  # (request, deadline)
        self.booking = False  # that request books a callback (not an HTTP tool)
        self.tool_key = str(saved.get("tool_key", ""))
        self.recording: tuple[float, str] | None = None  # (max_s, mark after which it starts)
        self.recorded: bytearray | None = None
        self.decodes: dict[int, float] = {}  # decode request -> deadline
        self._resume_key = ""
        self._hangup_after: str | None = None  # hang up once this mark has played
        self.giving_up = False  # handing the call to the fallback queue: if that fails, goodbye
        self.hanging_up = False  # our side is ending the call: only its end and recordings still count
        self.progress = int(saved.get("progress", 0))  # events that moved the call on (checkpoints)
        self.ended = False
        self._resuming = False
        self._checkpointed = ""
        # (step, no-match count) the record last showed; a resumed call goes on from its checkpoint
        self._decided: tuple[str | None, int] = (self.it.state.step, self.it.state.no_matches)

    # -- public -------------------------------------------------------------------------------
    @property
    def sensitive(self) -> bool:
        """The caller is keying or saying a PIN/card number: keep it out of logs and records."""
        return self.collect is not None and self.collect.sensitive and self.it.state.waiting == "input"

    def start(self, now: float) -> list[fx.Effect]:
        self.clock = TurnClock(answered=now)
        self.end_at = now + self.cfg.max_call_s
        if self.resume is not None and "interpreter" in self.resume.state:
            self._resuming = True
            try:
                return self._resumed(now)
            finally:
                self._resuming = False
        today = self.info.today or datetime.date.today().isoformat()
        info = self.info
        started = ip.CallStarted(
            now,
            info.caller,
            info.called,
            info.call_id,
            today,
            info.entry,
            dict(info.variables),
            info.direction,
        )
        plan = fx.Note(
            "plan", {"id": self.plan.id, "version": self.plan.version, "hash": self.plan.content_hash}
        )
        out: list[fx.Effect] = [plan]
        if info.direction == "outbound":
            out.append(fx.Note("outbound", {"entry": info.entry, "kept": sorted(info.variables)}))
        return out + self._adapt(self.it.handle(started), now)

    def handle(self, event: ev.Event, now: float) -> list[fx.Effect]:
        if self.ended:
            if isinstance(event, ev.RecordingSaved):  # a message kept as the caller hung up
                return [fx.Note("recording", {"seconds": round(event.seconds, 2), "path": event.path})]
            return []
        if self.hanging_up and not isinstance(event, ev.CallEnded | ev.RecordingSaved):
            return []
        if isinstance(event, ev.Audio):
            return self._audio(event.pcm, now)
        if isinstance(event, ev.Key):
            return self._key(event, now)
        if isinstance(event, ev.Played | ev.Dropped):
            return self._played(event.mark, now, isinstance(event, ev.Dropped))
        if isinstance(event, ev.SpeechReady):
            if event.req in self.speaking:
                self.speaking.discard(event.req)
                if self.clock is not None:
                    self.clock.tts_ready(now)
            return []
        if isinstance(event, ev.SpeakFailed):
            self.speaking.discard(event.req)
            return [fx.Note("tts_failed", {"error": event.error[:200]}, log="tts.failed")]
        if isinstance(event, ev.Decoded | ev.DecodeFailed):
            return self._decoded(event, now)
        if isinstance(event, ev.LlmSentence):
            return self._llm_sentence(event, now)
        if isinstance(event, ev.LlmDone):
            return self._llm_done(event, now)
        if isinstance(event, ev.ToolDone):
            return self._tool_done(event, now)
        if isinstance(event, ev.TransferDone):
            why = "" if event.ok else f"{event.status} {event.reason}".strip()  # variable transfer_reason
            note = fx.Note(
                "transfer_result",
                {"queue": event.queue, "ok": event.ok, "status": event.status, "reason": event.reason},
            )
            if self.giving_up:
                return [note] if event.ok else [note, *self._goodbye(now)]
            return [note, *self._adapt(self.it.handle(ip.TransferResult(event.ok, now, why)), now)]
        if isinstance(event, ev.RecordingSaved):
            done = ip.RecordingDone(event.path, event.seconds, now)
            note = fx.Note("recording", {"seconds": round(event.seconds, 2), "path": event.path})
            return [note, *self._adapt(self.it.handle(done), now)]
        if isinstance(event, ev.CallEnded):
            return self._call_ended(event.reason)
        return []

    def next_deadline(self) -> float | None:
        if self.hanging_up:
            return None
        times = [self.end_at, *self.decodes.values()]
        times += [t for t in (self.no_input_at, self.agent_deadline) if t is not None]
        if self.tool is not None:
            times.append(self.tool[1])
        return None if self.ended else min(times)

    def on_timer(self, now: float) -> list[fx.Effect]:
        if self.ended or self.hanging_up:
            return []
        out: list[fx.Effect] = []
        if now >= self.end_at:
            self.hanging_up, self.end_at = True, float("inf")
            return [
                fx.Note("hangup_request", {"reason": "max_call_duration"}),
                fx.Hangup("max call duration"),
            ]
        for req, deadline in list(self.decodes.items()):
            if now >= deadline:
                out += self._decoded(ev.DecodeFailed(req, "no result within the decode budget"), now)
        if self.agent is not None and self.agent_deadline is not None and now >= self.agent_deadline:
            req = self.agent[0]
            out += [fx.CancelLlm(req), *self._llm_done(ev.LlmDone(req, False, "timed out"), now)]
        if self.tool is not None and now >= self.tool[1]:
            req = self.tool[0]
            out += [fx.CancelTool(req), *self._tool_done(ev.ToolDone(req, False, "timed out"), now)]
        if self.no_input_at is not None and now >= self.no_input_at:
            self.no_input_at = None
            out.append(fx.Note("no_input", {}))
            out += self._adapt(self.it.handle(ip.NoInputTimeout(now)), now)
        return out

    def checkpoint(self) -> dict[str, Any]:
        """What a new worker needs to go on with this call."""
        return {
            "interpreter": self.it.state.model_dump(mode="json"),
            "req": self.req,
            "digits": self.digits[-64:],
            "tool_key": self.tool_key if self.tool is not None else "",
            "progress": self.progress,
        }

    # -- caller audio and keys ------------------------------------------------------------------
    def _audio(self, pcm: bytes, now: float) -> list[fx.Effect]:
        out: list[fx.Effect] = []
        for heard in self.hearing.feed(pcm, now):
            if isinstance(heard, Started):
                out.append(fx.Note("speech_started", {"audio_t": round(heard.audio_t, 3)}))
                self.answering = True
                self.no_input_at = None  # the caller is answering
                barge = self._barge() + self._interrupt_agent(now)
                if barge:
                    opened = self.hearing.listener.endpointer.params.start_ms / 1000
                    out.append(fx.Note("barge_in", {"audio_t": round(heard.audio_t + opened, 3)}))
                out += barge
            elif isinstance(heard, Ended):
                out.append(
                    fx.Note(
                        "speech_ended", {"audio_t": round(heard.audio_t, 3), "duration_s": heard.duration_s}
                    )
                )
                if not self.cfg.recognise:
                    out += self._unheard_turn(now)
            else:
                out += self._hearing_output(heard, now)
        if self.recorded is not None:
            out += self._record(pcm)
        return out

    def _unheard_turn(self, now: float) -> list[fx.Effect]:
        """Without a recogniser a spoken turn is no answer: wait for keys again, timer running."""
        self.answering = False
        if self.collect is not None and self.it.state.waiting == "input":
            return self._arm(self.collect.timeout_s, now)
        return []

    def _key(self, key: ev.Key, now: float) -> list[fx.Effect]:
        digit = REDACTED if self.sensitive else key.digit
        out: list[fx.Effect] = [fx.Note("dtmf", {"digit": digit, "method": key.method}, log="call.dtmf")]
        self.no_input_at = None
        if self.recorded is not None and key.digit == "#":
            return out + self._finish_recording()
        if self.it.spare(key.digit, now):
            return [*out, fx.Note("key_spared", {"why": "the terminator of an entry already complete"})]
        self.digits.append(key.digit)
        st = self.it.state
        step, before = st.step, (st.step, st.waiting, st.marks)
        out += self._barge() + self._interrupt_agent(now)
        out += self._adapt(self.it.handle(ip.Dtmf(key.digit, now)), now)
        if (st.step, st.waiting, st.marks) != before and self.hearing.abandon():
            # The keys answered the step: what the caller was saying meanwhile belongs to it, not to
            # the next step (a spoken "one" must not fill the account number that key 1 led to).
            self.answering = False
            out.append(fx.Note("turn_dropped", {"why": "keys answered the step"}))
        if self.collect is not None and st.waiting == "input" and st.step == step and st.digits:
            # Keys are being typed: the entry ends after this much silence (or at its terminator).
            out += self._arm(self.collect.digit_timeout_s, now)
        return out

    # -- recognition ----------------------------------------------------------------------------
    def _decoded(self, event: ev.Decoded | ev.DecodeFailed, now: float) -> list[fx.Effect]:
        if self.decodes.pop(event.req, None) is None:
            return []  # given up on already (its budget ran out)
        out: list[fx.Effect] = []
        result: Transcript | None = None
        if isinstance(event, ev.Decoded):
            result = event.transcript
        else:
            out.append(fx.Note("asr_failed", {"error": event.error[:200]}, log="asr.failed"))
        for heard in self.hearing.decoded(event.req, result, self.it.accepts):  # (text, confidence)
            out += self._hearing_output(heard, now)
        return out

    def _hearing_output(self, heard: object, now: float) -> list[fx.Effect]:
        if isinstance(heard, DecodeRequest):
            self.decodes[heard.req] = now + self.cfg.decode_budget_s
            hints = tuple(self.collect.hints) if self.collect is not None else ()
            return [fx.Decode(heard.req, heard.audio, hints)]
        if isinstance(heard, Heard):
            return [fx.Note(heard.kind, dict(heard.data))]
        if isinstance(heard, Guess):
            return self._early_llm(heard.transcript.text, heard.transcript.confidence, now)
        if isinstance(heard, Resumed):
            return self._drop_early()
        if isinstance(heard, Answer):
            return self._answer(heard, now)
        return []

    def _answer(self, answer: Answer, now: float) -> list[fx.Effect]:
        result = answer.transcript
        self.answering = False
        out: list[fx.Effect] = [fx.Note("early_endpoint", {})] if answer.early else []
        gap_ms = round((now - self.hearing.speech_end) * 1000)
        out += self._turn_record(self.clock.abandon() if self.clock else None)  # the last one got no reply
        if self.clock is not None:
            self.clock.transcribed(self.hearing.speech_end, now)
        if result is None:
            out.append(fx.Note("asr_unrecognized", {"parts": answer.parts}, log="asr.unrecognized"))
            actions = self.it.handle(ip.SpeechUnrecognized(now))
        else:
            shown = REDACTED if self.sensitive else result.text
            data = {
                "text": shown,
                "confidence": result.confidence,
                "decode_s": result.decode_s,
                "audio_s": result.audio_s,  # caller audio sent to the recogniser (a cost)
                "asr": result.provider,
                "end_to_decision_ms": gap_ms,
            }
            out.append(fx.Note("transcript", data, log="call.transcript"))
            actions = self.it.handle(ip.SpeechFinal(result.text, result.confidence, now))
        if self.clock is not None and not any(isinstance(a, ip.AgentTurn) for a in actions):
            self.clock.decided(now, "dialplan")  # (an LLM turn: its first sentence is the decision)
        return out + self._adapt(actions, now)

    # -- speaking and barge-in ------------------------------------------------------------------
    def _speak(self, text: str, mark: str, audio: str | None, now: float) -> fx.Speak:
        req = self._next_req()
        self.speaking.add(req)
        lead = self.clock.lead_mark() if self.clock is not None else None
        return fx.Speak(req, text, mark, audio, lead, cache=text in self.cacheable)

    def _barge(self) -> list[fx.Effect]:
        if self.playing and all(self.playing.values()):
            self.playing.clear()
            self.speaking.clear()
            return [fx.StopSpeech(), fx.Note("flush", {})]
        return []

    def _played(self, mark: str, now: float, dropped: bool) -> list[fx.Effect]:
        if mark.startswith("turn:"):
            if self.clock is None:
                return []
            record = self.clock.mark_played(mark, now) if not dropped else None
            return self._turn_record(record)
        self.playing.pop(mark, None)
        out: list[fx.Effect] = [fx.Note("played", {"mark": mark, "dropped": dropped})]
        if self.recording is not None and mark == self.recording[1]:
            self.recorded = bytearray()  # the tone / prompt is over: the message starts now
        waiting = self.it.state.waiting == "input"
        if mark == self.collect_after and self.collect is not None and waiting and not self.answering:
            self.collect_after = None
            out += self._arm(self.collect.timeout_s, now)
        if mark == self._hangup_after:
            self.hanging_up = True
            return [*out, fx.Note("hangup_request", {"reason": "bot_failed"}), fx.Hangup("bot_failed")]
        return out + self._adapt(self.it.handle(ip.PlaybackDone(mark, now)), now)

    def _arm(self, seconds: float, now: float) -> list[fx.Effect]:
        self.no_input_at = now + seconds
        return []

    # -- LLM turns -------------------------------------------------------------------------------
    def _early_llm(self, text: str, confidence: float, now: float) -> list[fx.Effect]:
        """The caller paused and what they said so far is decoded: at an agent step, ask the LLM
        now, on a dry run of the interpreter, and keep its sentences unspoken. If the turn ends with
        this transcript, the reply is adopted (the time to its first sentence is saved); if the
        caller goes on, or the turn ends otherwise, it is cancelled."""
        st = self.it.state
        if (
            not self.cfg.llm_early
            or self.agent is not None
            or st.waiting != "input"
            or st.agent_tool
            or st.step is None
            or not isinstance(self.plan.steps[st.step].verb, Agent)
        ):
            return []
        if self.early is not None and self.early.text == text:
            return []  # already asked for this
        out = self._drop_early()
        trial = ip.Interpreter(self.plan, st.model_copy(deep=True))
        actions = trial.handle(ip.SpeechFinal(text, confidence, now))
        turn = next((a for a in actions if isinstance(a, ip.AgentTurn)), None)
        if turn is None:
            return out
        req = self._next_req()
        self.early = _EarlyLlm(req, text, turn)
        note = fx.Note("llm_early", {"messages": len(turn.messages)})
        return [*out, note, fx.AskLlm(req, turn.instructions, turn.messages, turn.tools)]

    def _drop_early(self) -> list[fx.Effect]:
        early, self.early = self.early, None
        return [fx.CancelLlm(early.req)] if early is not None else []

    def _llm_sentence(self, event: ev.LlmSentence, now: float) -> list[fx.Effect]:
        if self.early is not None and self.early.req == event.req:
            self.early.sentences.append(event.text)  # said if the turn ends as it was guessed
            return []
        if self.agent is None or self.agent[0] != event.req:
            return []
        if not self.it.state.agent_done and claims_done(event.text):
            # "I've moved your appointment" with no tool that succeeded: not said (never pretend)
            return [fx.Note("llm_claim_dropped", {"text": event.text[:200]}, log="llm.claim_dropped")]
        turn = self.agent[1]
        if not self.agent_said and self.clock is not None:
            self.clock.decided(now, "llm")  # the first words are ready
        self.agent_deadline = now + self.cfg.llm_turn_s
        self.agent_marks += 1
        mark = f"agent#{self.agent_marks}"
        self.playing[mark] = turn.barge_in
        self.agent_said.append(event.text)
        return [self._speak(event.text, mark, None, now)]

    def _llm_done(self, event: ev.LlmDone, now: float) -> list[fx.Effect]:
        if self.early is not None and self.early.req == event.req:
            self.early.done = event
            return []
        if self.agent is None or self.agent[0] != event.req:
            return []
        reply: dict[str, Any] = {"sentences": len(self.agent_said), "ok": event.ok}
        if event.tool_call is not None:
            reply["tool"] = event.tool_call[1][:48]
        out: list[fx.Effect] = [fx.Note("agent_reply", reply)]
        if event.usage:
            out.append(fx.Note("llm_usage", dict(event.usage)))
        if not event.ok:
            out.append(fx.Note("llm_failed", {"error": event.error[:200]}, log="llm.failed"))
        return out + self._finish_agent(event.ok, now, event.tool_call if event.ok else None)

    def _interrupt_agent(self, now: float) -> list[fx.Effect]:
        """The caller speaks or presses a key during an LLM turn: stop it where it is (if allowed)."""
        if self.agent is None or not self.agent[1].barge_in:
            return []
        req = self.agent[0]
        return [fx.CancelLlm(req), fx.Note("agent_interrupted", {}), *self._finish_agent(True, now)]

    def _finish_agent(
        self, ok: bool, now: float, tool_call: tuple[str, str, str] | None = None
    ) -> list[fx.Effect]:
        said = " ".join(self.agent_said)
        last = f"agent#{self.agent_marks}" if self.agent_said else None
        self.agent, self.agent_said, self.agent_deadline = None, [], None
        return self._adapt(self.it.handle(ip.AgentReply(said, ok, now, tool_call)), now, last)

    # -- tools and recordings -------------------------------------------------------------------
    def _tool_done(self, event: ev.ToolDone, now: float) -> list[fx.Effect]:
        if self.tool is None or self.tool[0] != event.req:
            return []
        self.tool = None
        if self.booking:
            self.booking = False
            info = event.data if isinstance(event.data, dict) else {"error": str(event.data)}
            data = {"ok": event.ok, **{k: info[k] for k in ("at", "job", "status", "error") if k in info}}
            note = fx.Note("callback", data, log="callback.booked" if event.ok else "callback.refused")
            return [note, *self._adapt(self.it.handle(ip.ToolResult(event.ok, event.data, now)), now)]
        data = {"ok": event.ok, "error": None if event.ok else str(event.data)[:200]}
        out: list[fx.Effect] = [fx.Note("tool_result", data, log=None if event.ok else "tool.failed")]
        return out + self._adapt(self.it.handle(ip.ToolResult(event.ok, event.data, now)), now)

    def _record(self, pcm: bytes) -> list[fx.Effect]:
        assert self.recorded is not None and self.recording is not None
        self.recorded += pcm
        if len(self.recorded) >= self.recording[0] * self.cfg.sample_rate * 2:
            return self._finish_recording()
        return []

    def _finish_recording(self) -> list[fx.Effect]:
        pcm, self.recorded, self.recording = bytes(self.recorded or b""), None, None
        return [fx.SaveRecording(self._next_req(), pcm)]

    # -- interpreter actions -> effects ----------------------------------------------------------
    def _adapt(self, actions: list[ip.Action], now: float, last_mark: str | None = None) -> list[fx.Effect]:
        """Interpreter actions -> effects. ``last_mark``: audio already queued that a new collect's
        no-input timer must wait for."""
        out: list[fx.Effect] = self._decisions()
        arm: ip.StartCollect | None = None  # a collect whose no-input timer starts now
        adopted: _EarlyLlm | None = None
        if last_mark is not None and last_mark not in self.playing:
            last_mark = None  # it has already played
        for a in actions:
            if isinstance(a, ip.SayAction):
                self.playing[a.mark] = a.barge_in
                last_mark = a.mark
                out.append(self._speak(a.text, a.mark, a.audio, now))
            elif isinstance(a, ip.StartCollect):
                if self.collect is None or self.collect.end_of_turn_ms != a.end_of_turn_ms:
                    self.hearing.listener.end_of_turn(a.end_of_turn_ms)
                self.collect, self.collect_after = a, last_mark
                arm = a if last_mark is None and not self.answering else None
            elif isinstance(a, ip.TransferAction):
                out.append(fx.Note("transfer_request", {"queue": a.queue}))
                out.append(fx.Transfer(a.queue, a.reason or "dialplan transfer", dict(a.headers)))
            elif isinstance(a, ip.HangupAction):
                out.append(fx.Note("hangup_request", {"reason": a.disposition}))
                out.append(fx.Hangup(a.disposition))
            elif isinstance(a, ip.ToolCall):
                out += self._call_tool(a, now)
            elif isinstance(a, ip.ScheduleCallback):
                out += self._book_callback(a, now)
            elif isinstance(a, ip.StartRecording):
                self.recording = (a.max_s, a.after_mark)
            elif isinstance(a, ip.AgentTurn):
                early, self.early = self.early, None
                if early is not None and (early.turn.instructions, early.turn.messages) != (
                    a.instructions,
                    a.messages,
                ):
                    out.append(fx.CancelLlm(early.req))  # the turn ended otherwise than guessed
                    early = None
                req = early.req if early is not None else self._next_req()
                self.agent, self.collect, self.collect_after = (req, a), None, None
                self.no_input_at = None  # the bot has the turn: silence now is not the caller's
                self.agent_deadline = now + self.cfg.llm_first_sentence_s
                out.append(fx.Note("agent_turn", {"messages": len(a.messages), "early": early is not None}))
                if early is None:
                    out.append(fx.AskLlm(req, a.instructions, a.messages, a.tools))
                else:
                    adopted = early
        # Only the batch's last collect, if nothing later in the batch (an LLM turn) replaced it.
        if arm is not None and arm is self.collect:
            self._arm(arm.timeout_s, now)
        out += self._checkpoint()
        if self.early is not None and self.it.state.waiting != "input":
            out += self._drop_early()  # the call moved on (a key, a person): that reply is not wanted
        if adopted is not None:  # what the early request said so far is the reply's start
            for sentence in adopted.sentences:
                out += self._llm_sentence(ev.LlmSentence(adopted.req, sentence), now)
            if adopted.done is not None:
                out += self._llm_done(adopted.done, now)
        return out

    def _decisions(self) -> list[fx.Effect]:
        """The interpreter's decisions since the last look, for the call's record: a step entered,
        an answer that matched nothing (what the failure classes are derived from)."""
        st = self.it.state
        step, no_matches = self._decided
        out: list[fx.Effect] = []
        if st.no_matches > no_matches:
            out.append(fx.Note("no_match", {"step": step, "count": st.no_matches}))
        if st.step != step and st.step is not None:
            out.append(fx.Note("step", {"step": st.step}))
        self._decided = (st.step, st.no_matches)
        out += [fx.Note(kind, data) for kind, data in self.it.notes]
        self.it.notes.clear()
        return out

    def _call_tool(self, call: ip.ToolCall, now: float) -> list[fx.Effect]:
        req = self._next_req()
        st = self.it.state
        # One key per call, step and attempt; the same again when a new worker retries it after a crash.
        key = self._resume_key or f"{self.info.call_id}|{st.step}|{st.marks}|{req}"
        self.tool_key = self._resume_key or hashlib.sha256(key.encode()).hexdigest()[:32]
        self._resume_key = ""
        budget = call.timeout_s * (call.retries + 1) + self.cfg.tool_slack_s
        self.tool = (req, now + budget)
        note = fx.Note("tool_call", {"integration": call.integration, "method": call.method})
        return [note, fx.CallTool(req, call, self.tool_key)]

    def _book_callback(self, cb: ip.ScheduleCallback, now: float) -> list[fx.Effect]:
        req = self._next_req()
        # One booking per pass through the step (a caller who comes back to it with another time
        # books anew); a worker that resumes mid-booking books the same job again (the saved key).
        st = self.it.state
        key = self._resume_key or f"callback:{self.info.call_id}:{st.step}:{st.marks}"
        self._resume_key, self.tool_key = "", key
        self.tool, self.booking = (req, now + BOOKING_BUDGET_S), True
        return [fx.Note("callback_request", {"entry": cb.entry}), fx.BookCallback(req, cb, key)]

    def _checkpoint(self) -> list[fx.Effect]:
        """A checkpoint when the interpreter's state changed; that counts as progress unless this
        worker is replaying the step it resumed at (the UA counts deaths since the last progress)."""
        key = self.it.state.model_dump_json()
        if key == self._checkpointed:
            return []
        if self._checkpointed and not self._resuming:
            self.progress += 1
        self._checkpointed = key
        return [fx.Checkpoint(self.checkpoint())]

    def _turn_record(self, record: dict[str, Any] | None) -> list[fx.Effect]:
        if record is None:
            return []
        return [fx.Note("turn", record, log="call.turn"), fx.TurnMetrics(record)]

    def _call_ended(self, reason: str) -> list[fx.Effect]:
        self.ended = True
        self.it.handle(ip.CallerHungUp(0.0))
        out: list[fx.Effect] = [fx.Note("call_ended", {"reason": reason})]
        if self.clock is not None:
            record = self.clock.abandon()
            if record is not None:
                out.append(fx.Note("turn", record, log="call.turn"))  # no UA left to export it to
        if self.agent is not None:
            out.append(fx.CancelLlm(self.agent[0]))
        out += self._drop_early()
        if self.tool is not None:
            out.append(fx.CancelTool(self.tool[0]))
        if self.recorded is not None:
            out += self._finish_recording()
        return out

    # -- resuming in a new worker ---------------------------------------------------------------
    def _resumed(self, now: float) -> list[fx.Effect]:
        """Go on where the dead worker left off: an apology, then the current step again. A call
        that killed its worker twice at the same point is handed to a person (or politely ended)."""
        assert self.resume is not None
        st = self.it.state
        out: list[fx.Effect] = [fx.Note("resumed", {"step": st.step, "deaths": self.resume.deaths})]
        if st.waiting == "transfer" or st.ended:
            return out  # the UA still holds the transfer; its result comes to us
        if st.plan_hash != self.plan.content_hash or (st.step is not None and st.step not in self.plan.steps):
            # The plan changed under the call (edited or a new version published): its checkpoint
            # cannot be trusted in the new one. Hand the call over rather than guess.
            out.append(fx.Note("resume_plan_changed", {"was": st.plan_hash, "now": self.plan.content_hash}))
            return out + self._give_up(now)
        if self.resume.deaths >= 2:
            return out + self._give_up(now)
        mark = "resume#apology"
        self.playing[mark] = True
        out.append(self._speak(RESUME_APOLOGY, mark, None, now))
        request = self.it.pending_request()
        if self.tool_key.startswith("callback:"):
            self._resume_key = self.tool_key  # the same booking: its key makes it one job
        elif request is not None:
            if not request.safe_to_retry():
                # Not a blind repeat: the tool may have acted. The step's error path says so.
                out.append(fx.Note("tool_interrupted", {"step": st.step}, log="tool.interrupted"))
                failed = ip.ToolResult(False, "interrupted: the call's worker restarted", now)
                return out + self._adapt(self.it.handle(failed), now)
            self._resume_key = self.tool_key  # the same call again, with the same idempotency key
        return out + self._adapt(self.it.resume(), now, last_mark=mark)

    def _give_up(self, now: float) -> list[fx.Effect]:
        st = self.it.state
        out: list[fx.Effect] = [fx.Note("resume_gave_up", {"step": st.step}, log="call.resume_gave_up")]
        fallback = self.plan.settings.fallback_queue
        st.ended, st.waiting = True, ""
        if fallback:
            self.giving_up = True
            reason = "the bot could not go on with this call"
            return out + self._adapt([ip.TransferAction(fallback, reason)], now)
        return out + self._goodbye(now)

    def _goodbye(self, now: float) -> list[fx.Effect]:
        """An apology, then the hang-up once it has been heard."""
        mark = "goodbye#resume"
        self.playing[mark] = False
        self._hangup_after = mark
        return [self._speak(GIVE_UP, mark, None, now)]

    def _next_req(self) -> int:
        self.req += 1
        return self.req


def speaks_uncached(plan: Plan) -> bool:
    """Does this plan say things no cache can hold (texts with {placeholders}, LLM replies)? Then its
    call workers load the TTS before they are ready rather than while a caller waits."""
    return any(
        isinstance(step.verb, Agent) or any(PLACEHOLDER.search(t) for t in step.verb.texts())
        for step in plan.steps.values()
    )


def plan_prompts(plan: Plan) -> list[str]:
    """The plan's fixed texts (no {placeholders}), asked of its verbs: they go to the prompt cache."""
    return [t for step in plan.steps.values() for t in step.verb.texts() if not PLACEHOLDER.search(t)]
