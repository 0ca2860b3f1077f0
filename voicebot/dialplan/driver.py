"""Drive an interpreter without a phone: for `voicebot chat` and dialplan conversation tests.

Playback is taken as instantaneous (every say is acknowledged at once) and transfers succeed unless
the caller side says otherwise, so a conversation is only what the caller says and presses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voicebot.dialplan.events import (
    Action,
    AgentReply,
    AgentTurn,
    CallStarted,
    Dtmf,
    Event,
    HangupAction,
    NoInputTimeout,
    PlaybackDone,
    RecordingDone,
    SayAction,
    ScheduleCallback,
    SpeechFinal,
    StartCollect,
    StartRecording,
    ToolCall,
    ToolResult,
    TransferAction,
    TransferResult,
)
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.plan import Plan


@dataclass
class Turn:
    """What the bot did in answer to one caller input."""

    said: list[str] = field(default_factory=list)
    listening: StartCollect | None = None
    transfer: str | None = None  # the queue
    transfer_action: TransferAction | None = None  # with the reason and context headers
    hangup: str | None = None
    tool: ToolCall | None = None  # waiting for tool_result()
    recording: bool = False  # waiting for recording_done()
    agent: AgentTurn | None = None  # waiting for agent_reply()
    callback: ScheduleCallback | None = None  # booked (at once, as callbacks_succeed says)


class Driver:
    """Feeds caller input to an interpreter and acknowledges its prompts, transfers and recordings."""

    def __init__(
        self, plan: Plan, transfers_succeed: bool = True, today: str = "", callbacks_succeed: bool = True
    ) -> None:
        self.it = Interpreter(plan)
        self.now = 0.0
        self.transfers_succeed = transfers_succeed
        self.callbacks_succeed = callbacks_succeed
        self.today = today

    @property
    def ended(self) -> bool:
        return self.it.state.ended

    def start(self, entry: str = "", variables: dict[str, object] | None = None) -> Turn:
        """The call is answered; with ``entry``, it is a callback the bot placed, starting there."""
        return self._feed(
            CallStarted(
                self.now,
                caller="+15550100",
                call_id="chat",
                today=self.today,
                entry=entry,
                variables=dict(variables or {}),
                direction="outbound" if entry else "inbound",
            )
        )

    def say(self, text: str) -> Turn:
        return self._feed(SpeechFinal(text, 0.95, self.now))

    def press(self, keys: str) -> Turn:
        turn = Turn()
        for key in keys:
            if not self.it.spare(key, self.now):  # as the call's engine does
                self._merge(turn, self._feed(Dtmf(key, self.now)))
        return turn

    def silence(self) -> Turn:
        return self._feed(NoInputTimeout(self.now))

    def recording_done(self, seconds: float) -> Turn:
        return self._feed(RecordingDone("message.wav" if seconds > 0 else "", seconds, self.now))

    def tool_result(self, ok: bool, data: object) -> Turn:
        return self._feed(ToolResult(ok, data, self.now))

    def agent_reply(self, text: str, ok: bool = True, tool_call: tuple[str, str, str] | None = None) -> Turn:
        """The LLM's reply to the waiting AgentTurn (spoken, so it counts as said); ``tool_call``:
        it also asked for a tool (id, name, arguments JSON)."""
        turn = Turn(said=[text] if ok and text else [])
        self._merge(turn, self._feed(AgentReply(text, ok, self.now, tool_call)))
        return turn

    def _feed(self, event: Event) -> Turn:
        self.now += 1.0
        turn = Turn()
        pending: list[Action] = list(self.it.handle(event))
        while pending:
            action = pending.pop(0)
            if isinstance(action, SayAction):
                turn.said.append(action.text)
                pending += self.it.handle(PlaybackDone(action.mark, self.now))
            elif isinstance(action, StartCollect):
                turn.listening = action
            elif isinstance(action, TransferAction):
                turn.transfer, turn.transfer_action = action.queue, action
                pending += self.it.handle(
                    TransferResult(self.transfers_succeed, self.now, "" if self.transfers_succeed else "busy")
                )
            elif isinstance(action, HangupAction):
                turn.hangup = action.disposition
            elif isinstance(action, ToolCall):
                turn.tool = action
            elif isinstance(action, ScheduleCallback):
                turn.callback = action
                when = f"{action.date or self.today or '2026-01-01'} {action.time or '09:00'}"
                result = (
                    {"at": when, "number": action.number, "job": 1}
                    if self.callbacks_succeed
                    else {"status": "error", "error": "not booked (callbacks_succeed: false)"}
                )
                pending += self.it.handle(ToolResult(self.callbacks_succeed, result, self.now))
            elif isinstance(action, StartRecording):
                turn.recording = True
            elif isinstance(action, AgentTurn):
                turn.agent = action
        return turn

    @staticmethod
    def _merge(into: Turn, more: Turn) -> None:
        into.said += more.said
        into.listening = more.listening or into.listening
        into.transfer = more.transfer or into.transfer
        into.transfer_action = more.transfer_action or into.transfer_action
        into.hangup = more.hangup or into.hangup
        into.tool = more.tool or into.tool
        into.recording = more.recording or into.recording
        into.agent = more.agent or into.agent
        into.callback = more.callback or into.callback
