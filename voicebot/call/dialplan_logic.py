"""Call logic driven by a dialplan: adapts the sans-I/O interpreter to the call worker's actions.

Same interface as the built-in handler (start, on_dtmf, on_speech_started, on_transcript,
on_played, on_transfer_result, on_no_input, expects, prompts); the no-input timer is armed when the
prompt that asks for input has been played (or flushed by barge-in).
"""

from __future__ import annotations

import datetime
import re

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
from voicebot.dialplan import interpreter as ip
from voicebot.dialplan.plan import Plan
from voicebot.dialplan.verbs.basic import Hangup as HangupVerb


class DialplanLogic:
    def __init__(self, plan: Plan, caller: str = "", called: str = "", call_id: str = "") -> None:
        self.plan = plan
        self.call = (caller, called, call_id)  # variables `caller`, `called`, `call_id`
        self.it = ip.Interpreter(plan)
        self.digits: list[str] = []
        self.playing: dict[str, bool] = {}  # mark -> barge-in allowed, for audio still queued
        self.collect: ip.StartCollect | None = None
        self.collect_after: str | None = None  # arm the timer once this mark has played
        self.answering = False  # the caller is mid-turn: no no-input timer until we know what they said
        self.agent: ip.AgentTurn | None = None  # the LLM turn being spoken
        self.agent_said: list[str] = []
        self.agent_marks = 0

    def prompts(self) -> list[str]:
        """Static texts of the plan (no {placeholders}): warmed into the prompt cache."""
        texts = []
        for step in self.plan.steps.values():
            v = step.verb
            for t in (
                getattr(v, "text", None),
                getattr(v, "prompt", None),
                getattr(v, "announce", None),
                v.say if isinstance(v, HangupVerb) else None,
                *getattr(v, "reprompts", []),
            ):
                if isinstance(t, str) and not re.search(r"\{[a-z_]", t):
                    texts.append(t)
        return texts

    @property
    def transferring(self) -> bool:
        return self.it.state.waiting == "transfer"

    @property
    def voice(self) -> str | None:
        """The plan's TTS voice (settings.voice); None: the configured backend's default."""
        return self.plan.settings.voice

    def hints(self) -> list[str]:
        """What the current step expects (menu words, choices): biases or constrains the recogniser."""
        return list(self.collect.hints) if self.collect is not None else []

    @property
    def sensitive(self) -> bool:
        """The caller is keying or saying a PIN/card number: keep it out of logs and call records."""
        return self.collect is not None and self.collect.sensitive and self.it.state.waiting == "input"

    def start(self, now: float) -> list[Action]:
        caller, called, call_id = self.call
        today = datetime.date.today().isoformat()  # "tomorrow", "monday" are relative to it
        started = ip.CallStarted(now, caller=caller, called=called, call_id=call_id, today=today)
        return self._adapt(self.it.handle(started))

    def on_dtmf(self, digit: str, now: float) -> list[Action]:
        self.digits.append(digit)
        step = self.it.state.step
        actions = self._barge() + self._interrupt_agent(now)
        actions += self._adapt(self.it.handle(ip.Dtmf(digit, now)))
        st = self.it.state
        if self.collect is not None and st.waiting == "input" and st.step == step and st.digits:
            # Keys are being typed: the entry ends after this much silence (or at its terminator).
            actions.append(ArmTimer(self.collect.digit_timeout_s))
        return actions

    def on_speech_started(self, now: float) -> list[Action]:
        self.answering = True
        return self._barge() + self._interrupt_agent(now)

    def on_speech_ended(self, now: float, will_transcribe: bool) -> list[Action]:
        """Without a recogniser a spoken turn is no answer: wait for keys again, timer running."""
        if will_transcribe:
            return []
        self.answering = False
        return (
            [ArmTimer(self.collect.timeout_s)]
            if self.collect is not None and self.it.state.waiting == "input"
            else []
        )

    def on_transcript(self, text: str, confidence: float, now: float) -> list[Action]:
        self.answering = False
        return self._adapt(self.it.handle(ip.SpeechFinal(text, confidence, now)))

    def expects(self, text: str) -> bool:
        """A complete answer for the current menu (an option word, or a yes/no)?"""
        words = {w.strip(".,!?;:'\"").lower() for w in text.split()}
        if self.collect is None:
            return False
        if self.collect.kind == "yes_no":
            return bool(words & {"yes", "no", "yeah", "nope"})
        return bool(words & {h.lower() for h in self.collect.hints})

    def on_played(self, mark: str, now: float) -> list[Action]:
        self.playing.pop(mark, None)
        actions: list[Action] = []
        waiting = self.it.state.waiting == "input"
        if mark == self.collect_after and self.collect is not None and waiting and not self.answering:
            self.collect_after = None
            actions.append(ArmTimer(self.collect.timeout_s))
        return actions + self._adapt(self.it.handle(ip.PlaybackDone(mark, now)))

    def on_transfer_result(self, queue: str, ok: bool, now: float, reason: str = "") -> list[Action]:
        return self._adapt(self.it.handle(ip.TransferResult(ok, now, reason)))

    def on_tool_result(self, ok: bool, data: object, now: float) -> list[Action]:
        return self._adapt(self.it.handle(ip.ToolResult(ok, data, now)))

    def on_recording_done(self, path: str, seconds: float, now: float) -> list[Action]:
        return self._adapt(self.it.handle(ip.RecordingDone(path, seconds, now)))

    # -- agent steps: the worker streams the LLM's reply sentence by sentence --------------------
    def agent_sentence(self, text: str) -> Play:
        """One sentence of the LLM's reply, to be spoken now (barge-in as the plan says)."""
        assert self.agent is not None
        self.agent_marks += 1
        mark = f"agent#{self.agent_marks}"
        self.playing[mark] = self.agent.barge_in
        self.agent_said.append(text)
        return Play(text, mark)

    def on_agent_reply(self, ok: bool, now: float) -> list[Action]:
        """The LLM's reply is over (or failed before a word): the plan goes on."""
        if self.agent is None:
            return []  # the caller interrupted it; the plan already moved on
        return self._finish_agent(ok, now)

    def _interrupt_agent(self, now: float) -> list[Action]:
        """The caller speaks or presses a key during an LLM turn: stop it where it is (if allowed)."""
        if self.agent is None or not self.agent.barge_in:
            return []
        return [CancelAgent(), *self._finish_agent(True, now)]

    def _finish_agent(self, ok: bool, now: float) -> list[Action]:
        said, last = " ".join(self.agent_said), f"agent#{self.agent_marks}" if self.agent_said else None
        self.agent, self.agent_said = None, []
        return self._adapt(self.it.handle(ip.AgentReply(said, ok, now)), last)

    def on_no_input(self, now: float) -> list[Action]:
        return self._adapt(self.it.handle(ip.NoInputTimeout(now)))

    def _barge(self) -> list[Action]:
        if self.playing and all(self.playing.values()):
            self.playing.clear()
            return [StopAudio()]
        return []

    def _adapt(self, actions: list[ip.Action], last_mark: str | None = None) -> list[Action]:
        """Interpreter actions -> worker actions. ``last_mark``: audio already queued that a new
        collect's no-input timer must wait for."""
        out: list[Action] = []
        arm: ip.StartCollect | None = None  # a collect whose no-input timer starts now
        if last_mark is not None and last_mark not in self.playing:
            last_mark = None  # it has already played
        for a in actions:
            if isinstance(a, ip.SayAction):
                self.playing[a.mark] = a.barge_in
                last_mark = a.mark
                out.append(Play(a.text, a.mark, a.audio))
            elif isinstance(a, ip.StartCollect):
                if self.collect is None or self.collect.end_of_turn_ms != a.end_of_turn_ms:
                    out.append(EndOfTurn(a.end_of_turn_ms))
                self.collect, self.collect_after = a, last_mark
                arm = a if last_mark is None and not self.answering else None
            elif isinstance(a, ip.TransferAction):
                out.append(Transfer(a.queue, a.reason or "dialplan transfer", dict(a.headers)))
            elif isinstance(a, ip.HangupAction):
                out.append(Hangup(a.disposition))
            elif isinstance(a, ip.ToolCall):
                out.append(RunTool(a))
            elif isinstance(a, ip.StartRecording):
                out.append(StartRecording(a.max_s, a.after_mark))
            elif isinstance(a, ip.AgentTurn):
                self.agent, self.collect, self.collect_after = a, None, None
                out.append(RunAgent(a))
        # Only the batch's last collect, if nothing later in the batch (an LLM turn) replaced it.
        if arm is not None and arm is self.collect:
            out.append(ArmTimer(arm.timeout_s))
        return out
