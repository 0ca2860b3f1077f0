"""The dialplan interpreter (sans-I/O): events with ``now`` in, actions out.

Deterministic; its whole state is a plain pydantic model (``State``) that serialises to JSON, so a
later issue can checkpoint a call and resume it in another worker. Verbs leave their results in
variables (``transfer_status``, ``tool_status``, ``<into>_via``, ...) that later steps branch on.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Literal

from pydantic import BaseModel, Field

from voicebot.dialplan import conditions, patterns, toolargs, understand, values
from voicebot.dialplan.check import continuation
from voicebot.dialplan.events import (
    Action,
    AgentReply,
    AgentTurn,
    CallerHungUp,
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
    SpeechPartial,
    SpeechUnrecognized,
    StartCollect,
    StartRecording,
    ToolCall,
    ToolResult,
    TransferAction,
    TransferResult,
)
from voicebot.dialplan.plan import Plan, Step
from voicebot.dialplan.verbs.agent import HANDOVER_TOOL, Agent, AgentTool
from voicebot.dialplan.verbs.branch import Branch
from voicebot.dialplan.verbs.callback import CALL_OWN, Callback
from voicebot.dialplan.verbs.collect import Collect
from voicebot.dialplan.verbs.goto import Goto
from voicebot.dialplan.verbs.hangup import Hangup
from voicebot.dialplan.verbs.menu import Menu
from voicebot.dialplan.verbs.record import Record
from voicebot.dialplan.verbs.registry import PLACEHOLDER
from voicebot.dialplan.verbs.say import Say
from voicebot.dialplan.verbs.set_vars import Set
from voicebot.dialplan.verbs.subflow import Return, Subflow
from voicebot.dialplan.verbs.tool import Request, Tool
from voicebot.dialplan.verbs.transfer import Transfer

__all__ = [  # events and actions are part of the interpreter's interface (voicebot.engine uses them)
    "Action",
    "AgentReply",
    "AgentTurn",
    "CallStarted",
    "CallerHungUp",
    "Dtmf",
    "Event",
    "HangupAction",
    "Interpreter",
    "NoInputTimeout",
    "PlaybackDone",
    "RecordingDone",
    "SayAction",
    "ScheduleCallback",
    "SpeechFinal",
    "SpeechPartial",
    "SpeechUnrecognized",
    "StartCollect",
    "StartRecording",
    "State",
    "ToolCall",
    "ToolResult",
    "TransferAction",
    "TransferResult",
]

MAX_AGENT_MESSAGES = 40  # the conversation an agent step sends to the LLM: the newest ones
SILENT_CALLER = "(the caller said nothing)"
UNRECOGNIZED_CALLER = "(the caller said something that could not be recognised)"
MAX_TOOL_CALLS = 6  # per agent step: a model that keeps calling tools is stopped (its error path)
MAX_RESULT_CHARS = 2000  # what the model is shown of a tool's result
SPARE_KEY_S = 3.0  # how long after a full-length entry its terminator is still taken as part of it
MAX_STEPS_PER_EVENT = 200  # the checker rejects loops that never wait; this is the runtime backstop
Prompted = Menu | Collect | Record | Tool | Callback
Confirmed = Record | Tool | Callback  # asks a yes/no question before it acts
Acting = Tool | Callback  # waits for a ToolResult


class State(BaseModel):
    """Everything the interpreter remembers about one call (JSON-serialisable)."""

    plan_id: str
    plan_version: int
    plan_hash: str
    step: str | None = None
    waiting: Literal["", "input", "playback", "transfer", "tool", "recording", "agent"] = ""
    after_playback: str = ""  # "hangup:<disposition>" or "transfer:<queue>"
    retries: int = 0
    digits: str = ""
    # An entry that filled its length ends at once; the terminator a caller presses after it out of
    # habit ("then press hash") is theirs, not an answer to what comes next: (key, until).
    spare_key: str = ""
    spare_until: float = 0.0
    variables: dict[str, Any] = Field(default_factory=dict)
    marks: int = 0
    no_inputs: int = 0  # call-wide counts, for handlers.max_no_input / max_no_match
    no_matches: int = 0
    today: str = ""
    agent_messages: list[tuple[str, str]] = Field(default_factory=list)  # (role, text) of this agent step
    agent_tool: str = ""  # the agent tool being confirmed or called
    agent_call: str = ""  # the LLM's id for that call
    agent_done: int = 0  # tool calls of this agent step that succeeded (may it say "done"?)
    # A tool call waiting for its step-up verification: JSON {step, tool, call, arguments}
    agent_verify: str = ""
    ended: bool = False
    disposition: str = ""


class Interpreter:
    """One call's run through a plan. ``handle(event)`` returns the actions to perform now."""

    def __init__(self, plan: Plan, state: State | None = None) -> None:
        self.plan = plan
        # Decisions for the call's record (kind, data): policy blocks, agent tool calls. The engine
        # takes them after each event.
        self.notes: list[tuple[str, dict[str, Any]]] = []
        self.state = state or State(
            plan_id=plan.id,
            plan_version=plan.version,
            plan_hash=plan.content_hash,
            variables=dict(plan.variables),
        )

    # -- public ------------------------------------------------------------------------------
    def handle(self, event: Event) -> list[Action]:
        """Advance the call by one event; never raises for anything a caller can do."""
        st = self.state
        if st.ended or isinstance(event, SpeechPartial):
            return []
        if isinstance(event, CallerHungUp):
            st.ended, st.disposition, st.waiting = True, "caller_hung_up", ""
            return []
        if isinstance(event, CallStarted):
            return self._call_started(event)
        if isinstance(event, PlaybackDone):
            return self._playback_done(event.mark)
        if isinstance(event, TransferResult):
            return self._transfer_result(event.ok, event.reason)
        if isinstance(event, ToolResult):
            return self._tool_result(event.ok, event.data)
        if isinstance(event, RecordingDone):
            return self._recording_done(event.path, event.seconds)
        if isinstance(event, AgentReply):
            return self._agent_reply(event)
        if st.waiting != "input" or st.step is None:
            return []
        step = self.plan.steps[st.step]
        if isinstance(step.verb, Agent) and st.agent_tool:
            if isinstance(event, Dtmf | SpeechFinal) and self._asks_for_agent(step, event):
                return self._run(self.plan.handlers.agent)
            return self._agent_confirm(step, event)
        if isinstance(event, NoInputTimeout):
            return (
                self._agent_says(step, SILENT_CALLER) if isinstance(step.verb, Agent) else self._timeout(step)
            )
        if isinstance(event, SpeechUnrecognized):
            if isinstance(step.verb, Agent):
                return self._agent_says(step, UNRECOGNIZED_CALLER)
            return self._no_match(step)
        if self._asks_for_agent(step, event):
            return self._run(self.plan.handlers.agent)
        if isinstance(step.verb, Agent):
            return self._agent_says(
                step, event.text if isinstance(event, SpeechFinal) else f"(pressed {event.digit})"
            )
        if isinstance(event, Dtmf):
            return self._dtmf(step, event.digit, event.now)
        return self._speech(step, event.text, event.confidence)

    def accepts(self, text: str, confidence: float = 1.0) -> bool:
        """Would ``text`` answer the step the caller is at, at once? Asked while the caller is still
        silent after a pause, to act before the turn has officially ended. Only for closed answers
        (menu options, yes/no, a choice): a free answer or a number may go on after a pause, and a
        consent or a tool's confirmation ("yes... but at three") waits for the end of the turn. A
        dry run on a copy of the state, so the rule is the interpreter's own matching, never a copy."""
        st = self.state
        if st.ended or st.waiting != "input" or st.step is None:
            return False
        verb = self.plan.steps[st.step].verb
        closed = isinstance(verb, Menu) or (isinstance(verb, Collect) and verb.kind in ("yes_no", "choice"))
        if not closed:
            return False
        trial = Interpreter(self.plan, st.model_copy(deep=True))
        trial.handle(SpeechFinal(text, confidence, 0.0))  # min_confidence applies as it will
        after = trial.state
        return after.no_matches == st.no_matches and (after.step != st.step or after.waiting != "input")

    def resume(self) -> list[Action]:
        """The call goes on in a new worker from this state: the actions of the step it was at, again
        (its prompt, the LLM turn, the tool call). Nothing for a transfer in progress (its result
        still comes) or a call that has ended."""
        st = self.state
        if st.ended or st.step is None or st.waiting == "transfer":
            return []
        step = self.plan.steps[st.step]
        verb = step.verb
        out: list[Action] = []
        if isinstance(verb, Agent):
            if st.waiting == "agent":
                self._agent_turn(verb, out)
                return out
            if st.agent_tool:
                tool = verb.tools[st.agent_tool]
                if st.waiting == "tool":
                    self._call_tool(tool, out, announce=False)
                else:
                    self._ask_confirm(tool, out)
                return out
            st.waiting = "input"
            settings = self.plan.settings
            return [StartCollect("text", settings.no_input_timeout_s, end_of_turn_ms=settings.end_of_turn_ms)]
        if isinstance(verb, Tool) and st.waiting == "tool":
            self._call_tool(verb, out, announce=False)
            return out
        if isinstance(verb, Callback) and st.waiting == "tool":
            self._book(verb, out)  # booked under the same key: a second booking is the first one
            return out
        return self._run(st.step)

    def _call_started(self, event: CallStarted) -> list[Action]:
        st = self.state
        if st.step is not None:
            return []  # a repeated start must not restart the call
        st.today = event.today
        for name in ("caller", "called", "call_id", "direction"):
            st.variables.setdefault(name, getattr(event, name))
        st.variables.setdefault("today", event.today)
        if not event.entry:
            return self._run(self.plan.start)
        if event.entry not in self.plan.steps:
            # The plan changed since the callback was booked: its start is the safe place.
            self.notes.append(("entry_unknown", {"entry": event.entry}))
            return self._run(self.plan.start)
        for name, value in event.variables.items():
            if PLACEHOLDER.fullmatch("{" + name + "}") and name not in CALL_OWN:
                st.variables[name] = value
        return self._run(event.entry)

    def _asks_for_agent(self, step: Step, event: Dtmf | SpeechFinal) -> bool:
        """The plan-wide 'a person, please' handler, unless the current menu uses that key/word itself."""
        h = self.plan.handlers
        if h.agent is None:
            return False
        local = step.verb.options if isinstance(step.verb, Menu) else []
        if isinstance(event, Dtmf):
            keyed = isinstance(step.verb, Collect) and step.verb.kind in ("digits", "number", "date", "time")
            return event.digit == h.agent_key and all(o.keys != h.agent_key for o in local) and not keyed
        taken = {w.lower() for o in local for w in o.words}
        tokens = understand.words(event.text)
        return any(understand.phrase_in(w, tokens) for w in h.agent_words if w.lower() not in taken)

    # -- running steps -----------------------------------------------------------------------
    def _run(self, step_id: str | None, actions: list[Action] | None = None) -> list[Action]:
        out = actions if actions is not None else []
        st = self.state
        for _ in range(MAX_STEPS_PER_EVENT):
            if step_id is None:
                return self._end(out, "completed")
            step = self.plan.steps[step_id]
            # pydantic's __setattr__ costs ~1 us: reset only what is set (a fifth of the event time)
            st.step = step_id
            if st.waiting:
                st.waiting = ""
            if st.retries:
                st.retries = 0
            if st.digits:
                st.digits = ""
            nxt = self._execute(step, out)
            if st.waiting or st.ended:
                return out
            step_id = nxt
        if self.plan.handlers.error and st.step != self.plan.handlers.error:
            return self._run(self.plan.handlers.error, out)
        return self._end(out, "error_loop")

    def _execute(self, step: Step, out: list[Action]) -> str | None:
        """Run one step; return where the call goes on (unless it now waits or has ended)."""
        verb, st = step.verb, self.state
        if isinstance(verb, Say):
            out.append(self._say(verb.text or "", verb.barge_in, verb.audio))
        elif isinstance(verb, Set):
            st.variables.update(
                {
                    k: values.render(v, st.variables) if isinstance(v, str) else v
                    for k, v in verb.values.items()
                }
            )
        elif isinstance(verb, Goto | Subflow | Return):
            targets = verb.targets()
            return targets[0] if targets else None
        elif isinstance(verb, Branch):
            return next(
                (c.goto for c in verb.cases if conditions.evaluate(c.when, st.variables)), verb.default
            )
        elif isinstance(verb, Menu | Collect | Record) or (isinstance(verb, Acting) and verb.confirm):
            self._prompt(step, out)
        elif isinstance(verb, Tool):
            self._call_tool(verb, out)
        elif isinstance(verb, Callback):
            self._book(verb, out)
        elif isinstance(verb, Agent):
            pending = json.loads(st.agent_verify) if st.agent_verify else None
            st.agent_verify = ""
            if pending is not None and pending.get("step") == step.id and pending.get("tool") in verb.tools:
                # Back from the step-up: the conversation goes on, the same call is checked again.
                name, call_id = pending["tool"], pending["call"]
                out += self._agent_tool_checked(step, verb, call_id, name, pending["arguments"], True)
                return None
            st.agent_messages, st.agent_tool, st.agent_call, st.agent_done = [], "", "", 0
            st.variables["agent_turns"] = st.variables["agent_tool_calls"] = 0
            self._agent_turn(verb, out)
        elif isinstance(verb, Transfer):
            self._transfer(verb, out)
        elif isinstance(verb, Hangup):
            if verb.say:
                out.append(self._say(verb.say, False))
                st.waiting, st.after_playback = "playback", f"hangup:{verb.disposition}"
            else:
                self._end(out, verb.disposition)
        return continuation(self.plan, step)

    # -- agent (LLM conversation) ---------------------------------------------------------------
    def _agent_turn(self, verb: Agent, out: list[Action]) -> None:
        st = self.state
        st.waiting = "agent"
        instructions = values.render(verb.instructions, st.variables)
        history = tuple(st.agent_messages[-MAX_AGENT_MESSAGES:])
        out.append(AgentTurn(instructions, history, self.plan.settings.barge_in, verb.functions()))

    def _agent_says(self, step: Step, text: str) -> list[Action]:
        """The caller's turn in an agent conversation: on to the LLM with it."""
        assert isinstance(step.verb, Agent)
        self.state.agent_messages.append(("user", text))
        out: list[Action] = []
        self._agent_turn(step.verb, out)
        return out

    def _agent_reply(self, event: AgentReply) -> list[Action]:
        st = self.state
        if st.waiting != "agent" or st.step is None:
            return []
        step = self.plan.steps[st.step]
        verb = step.verb
        assert isinstance(verb, Agent)
        st.waiting = ""
        if not event.ok:
            return self._agent_failed(step, verb, "unavailable")
        if event.text:
            st.agent_messages.append(("assistant", event.text))
        if event.tool_call is not None:
            return self._agent_tool_call(step, verb, *event.tool_call)
        st.variables["agent_turns"] = turns = int(st.variables.get("agent_turns", 0)) + 1
        for status, over in (
            ("done", verb.done_when is not None and conditions.evaluate(verb.done_when, st.variables)),
            ("max_turns", turns >= verb.max_turns),
        ):
            if over:
                st.variables["agent_status"] = status
                return self._run(continuation(self.plan, step))
        st.waiting = "input"
        settings = self.plan.settings
        return [StartCollect("text", settings.no_input_timeout_s, end_of_turn_ms=settings.end_of_turn_ms)]

    # -- agent tools -------------------------------------------------------------------------------
    def _agent_tool_call(
        self, step: Step, verb: Agent, call_id: str, name: str, arguments: str
    ) -> list[Action]:
        """The LLM asked for a tool. Checked against the plan before anything happens: a tool it was
        not given, arguments that do not fit, or a policy that does not hold -> the model is told
        why and answers again; nothing is called."""
        st = self.state
        call_id = call_id[:64] or f"call_{st.marks}"
        st.agent_messages.append(
            ("tool_call", json.dumps({"id": call_id, "name": name, "arguments": arguments}))
        )
        st.variables["agent_tool_calls"] = calls = int(st.variables.get("agent_tool_calls", 0)) + 1
        if calls > MAX_TOOL_CALLS:
            self.notes.append(("agent_tool", {"tool": name[:48], "outcome": "too_many_calls"}))
            return self._agent_failed(step, verb, "tool_failed")
        if name == HANDOVER_TOOL and verb.handover:
            self.notes.append(("agent_tool", {"tool": name, "outcome": "handover"}))
            st.variables["agent_status"] = "handover"
            return self._run(verb.handover)
        if name not in verb.tools:
            self.notes.append(("agent_tool", {"tool": name[:48], "outcome": "unknown_tool"}))
            return self._tool_answer(step, call_id, {"error": f"there is no tool named {name[:48]!r}"})
        return self._agent_tool_checked(step, verb, call_id, name, arguments, False)

    def _agent_tool_checked(
        self, step: Step, verb: Agent, call_id: str, name: str, arguments: str, verified: bool
    ) -> list[Action]:
        """Arguments, then policy: refused, off to its step-up verification (once), or on to the
        read-back / the call. ``verified``: back from that verification."""
        st, tool = self.state, verb.tools[name]
        args, problem = toolargs.validate(tool, arguments)
        if problem:
            self.notes.append(("agent_tool", {"tool": name, "outcome": "invalid_arguments", "why": problem}))
            return self._tool_answer(step, call_id, {"error": f"invalid arguments: {problem}"})
        audit = toolargs.redacted(tool, args)
        if tool.allowed_when and not conditions.evaluate(tool.allowed_when, st.variables):
            if tool.verify and not verified:
                self.notes.append(("agent_tool", {"tool": name, "outcome": "step_up", "arguments": audit}))
                st.agent_verify = json.dumps(
                    {"step": step.id, "tool": name, "call": call_id, "arguments": arguments}
                )
                return self._run(tool.verify)
            self.notes.append(("policy_block", {"tool": name, "rule": tool.allowed_when, "arguments": audit}))
            return self._tool_answer(step, call_id, {"error": f"not allowed: {tool.refusal}"})
        st.variables.update(args)
        st.agent_tool, st.agent_call = name, call_id
        self.notes.append(("agent_tool", {"tool": name, "outcome": "accepted", "arguments": audit}))
        out: list[Action] = []
        if tool.confirm:
            self._ask_confirm(tool, out)
        else:
            self._call_tool(tool, out)
        return out

    def _ask_confirm(self, tool: AgentTool, out: list[Action]) -> None:
        settings = self.plan.settings
        self.state.waiting = "input"
        out.append(self._say(tool.confirm or "", None))
        out.append(
            StartCollect(
                "yes_no", settings.no_input_timeout_s, ("yes", "no"), end_of_turn_ms=settings.end_of_turn_ms
            )
        )

    def _agent_confirm(self, step: Step, event: Event) -> list[Action]:
        """The caller's answer to an agent tool's read-back: yes (or 1) calls it, anything else does not."""
        st = self.state
        assert isinstance(step.verb, Agent)
        tool = step.verb.tools[st.agent_tool]
        yes: bool | None = None
        if isinstance(event, Dtmf):
            yes = {"1": True, "2": False}.get(event.digit)
        elif isinstance(event, SpeechFinal):
            yes = understand.yes_no(event.text)
        if yes is None and st.retries < 1 and not isinstance(event, NoInputTimeout):
            st.retries += 1
            st.no_matches += 1
            out: list[Action] = []
            self._ask_confirm(tool, out)
            return out
        st.retries = 0
        name, call_id = st.agent_tool, st.agent_call
        self.notes.append(("agent_tool", {"tool": name, "outcome": "confirmed" if yes else "declined"}))
        if not yes:  # no, silence or twice not understood: not consent
            st.agent_tool = st.agent_call = ""
            st.variables["tool_status"], st.variables["tool_error"] = "declined", ""
            return self._tool_answer(
                step, call_id, {"declined": "the caller did not confirm; nothing was done"}
            )
        calls: list[Action] = []
        self._call_tool(tool, calls)
        return calls

    def _agent_tool_result(self, step: Step, verb: Agent, ok: bool, data: Any) -> list[Action]:
        """Success goes back to the model with the fields the admin mapped (never the raw reply);
        a failure is not the model's to phrase: the plan's error path says it could not be done."""
        st = self.state
        tool, call_id = verb.tools[st.agent_tool], st.agent_call
        st.agent_tool = st.agent_call = ""
        st.variables["tool_status"] = "ok" if ok else "error"
        st.variables["tool_error"] = "" if ok else str(data)[:200]
        if not ok:
            st.agent_messages.append(("tool", json.dumps({"id": call_id, "content": "failed"})))
            return self._agent_failed(step, verb, "tool_failed")
        st.agent_done += 1
        shown: dict[str, Any] = {}
        for var, dotted in tool.result.items():
            st.variables[var] = shown[var] = values.dig(data, dotted)
        return self._tool_answer(step, call_id, {"ok": True, **shown})

    def _tool_answer(self, step: Step, call_id: str, content: dict[str, Any]) -> list[Action]:
        """Tell the model what came of its tool call; it answers again."""
        assert isinstance(step.verb, Agent)
        text = json.dumps(content, default=str)[:MAX_RESULT_CHARS]
        self.state.agent_messages.append(("tool", json.dumps({"id": call_id, "content": text})))
        out: list[Action] = []
        self._agent_turn(step.verb, out)
        return out

    def _agent_failed(self, step: Step, verb: Agent, status: str) -> list[Action]:
        st = self.state
        st.variables["agent_status"] = status
        target = verb.on_error or self.plan.handlers.error
        return self._run(target) if target is not None else self._end([], f"agent_{status}")

    def pending_request(self) -> Request | None:
        """The HTTP call the call is waiting for (a tool step's, or an agent tool's), if any."""
        st = self.state
        if st.waiting != "tool" or st.step is None:
            return None
        verb = self.plan.steps[st.step].verb
        if isinstance(verb, Agent):
            return verb.tools.get(st.agent_tool)
        return verb if isinstance(verb, Tool) else None

    def _say(self, text: str, barge_in: bool | None, audio: str | None = None) -> SayAction:
        self.state.marks += 1
        rendered = values.render(text, self.state.variables)
        allowed = self.plan.settings.barge_in if barge_in is None else barge_in
        return SayAction(rendered, allowed, f"{self.state.step}#{self.state.marks}", audio)

    def _prompt(self, step: Step, out: list[Action]) -> None:
        verb, settings = step.verb, self.plan.settings
        assert isinstance(verb, Prompted)
        self.state.waiting = "input"
        if isinstance(verb, Confirmed):
            out.append(self._say(verb.consent if isinstance(verb, Record) else verb.confirm or "", None))
            out.append(
                StartCollect(
                    "yes_no",
                    settings.no_input_timeout_s,
                    ("yes", "no"),
                    end_of_turn_ms=settings.end_of_turn_ms,
                )
            )
            return
        retry = self.state.retries
        text = (
            verb.reprompts[min(retry, len(verb.reprompts)) - 1] if retry and verb.reprompts else verb.prompt
        )
        out.append(self._say(text, None))
        timeout = verb.timeout_s or settings.no_input_timeout_s
        if isinstance(verb, Menu):
            hints = tuple(w for o in verb.options for w in o.words)
            out.append(
                StartCollect(
                    "menu",
                    timeout,
                    hints,
                    digit_timeout_s=settings.inter_digit_timeout_s,
                    end_of_turn_ms=verb.end_of_turn_ms or settings.end_of_turn_ms,
                )
            )
            return
        out.append(
            StartCollect(
                verb.kind,
                timeout,
                verb.hints(),
                values.KEYED_LENGTH.get(verb.kind, verb.max_digits),
                verb.terminator,
                verb.sensitive,
                settings.inter_digit_timeout_s,
                verb.min_confidence,
                verb.end_of_turn_ms or settings.end_of_turn_ms,
            )
        )

    # -- caller input --------------------------------------------------------------------------
    def _timeout(self, step: Step) -> list[Action]:
        verb, st = step.verb, self.state
        if isinstance(verb, Collect) and st.digits:
            return self._keys_done(step, st.digits)  # silence after some keys ends the entry
        return self._retry(step, "no_input")

    def spare(self, digit: str, now: float) -> bool:
        """Is this key the terminator of an entry that already ended on its length (pressed within
        ``SPARE_KEY_S``)? Then it answers nothing and must not interrupt what plays next. Any key
        spends the chance."""
        st = self.state
        key, until = st.spare_key, st.spare_until
        st.spare_key, st.spare_until = "", 0.0
        return bool(key) and digit == key and now <= until

    def _dtmf(self, step: Step, digit: str, now: float = 0.0) -> list[Action]:
        verb, st = step.verb, self.state
        if isinstance(verb, Confirmed):
            return self._confirmed(step, {"1": True, "2": False}.get(digit))
        if isinstance(verb, Menu):
            option = next((o for o in verb.options if o.keys == digit), None)
            return self._chose(step, option.goto, option.label(), "keys") if option else self._no_match(step)
        assert isinstance(verb, Collect)
        if verb.kind in ("yes_no", "choice", "text"):
            return self._single_key(step, verb, digit)
        limit = values.KEYED_LENGTH.get(verb.kind, verb.max_digits)
        if digit == verb.terminator:
            return self._keys_done(step, st.digits)
        st.digits += digit
        if len(st.digits) < limit:
            return []
        st.spare_key, st.spare_until = verb.terminator, now + SPARE_KEY_S
        return self._keys_done(step, st.digits)

    def _single_key(self, step: Step, verb: Collect, digit: str) -> list[Action]:
        if verb.kind == "yes_no" and digit in "12":
            return self._store(step, digit == "1", "keys")
        choice = next((c for c in verb.choices if c.keys == digit), None)
        return self._store(step, choice.value, "keys") if choice else self._no_match(step)

    def _keys_done(self, step: Step, keys: str) -> list[Action]:
        verb = step.verb
        assert isinstance(verb, Collect)
        if verb.kind in values.KEYED_LENGTH:
            parsed = values.keyed_date_time(verb.kind, keys)
            return self._store(step, parsed, "keys") if parsed else self._no_match(step)
        if len(keys) < verb.min_digits:
            return self._no_match(step)
        return self._store(step, int(keys) if verb.kind == "number" else keys, "keys")

    def _speech(self, step: Step, text: str, confidence: float) -> list[Action]:
        verb = step.verb
        if isinstance(verb, Confirmed):
            return self._confirmed(step, understand.yes_no(text))
        if isinstance(verb, Menu):
            i = understand.match_option(text, [o.words for o in verb.options])
            if i is None:
                return self._no_match(step)
            return self._chose(step, verb.options[i].goto, verb.options[i].label(), "speech")
        assert isinstance(verb, Collect)
        if confidence < verb.min_confidence:
            return self._no_match(step)
        value = values.understood(verb, text, self.state.today)
        if value is None:
            return self._no_match(step)
        return self._store(step, value, "speech")

    def _chose(self, step: Step, target: str, label: str, via: str) -> list[Action]:
        verb = step.verb
        if isinstance(verb, Menu) and verb.into:
            self.state.variables[verb.into] = label
            self.state.variables[f"{verb.into}_via"] = via
        return self._run(target)

    def _store(self, step: Step, value: Any, via: str) -> list[Action]:
        verb = step.verb
        assert isinstance(verb, Collect)
        if verb.validate_pattern and not patterns.fullmatch(verb.validate_pattern, str(value)):
            return self._no_match(step)
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and not values.in_range(verb, value)
        ):
            return self._no_match(step)
        self.state.variables[verb.into] = value
        self.state.variables[f"{verb.into}_via"] = via
        return self._run(continuation(self.plan, step))

    def _confirmed(self, step: Step, yes: bool | None) -> list[Action]:
        """The answer to a record's consent or a tool's confirm question."""
        verb, st = step.verb, self.state
        if yes is None and st.retries < 1:
            return self._retry(step, "no_match")
        if isinstance(verb, Record):
            if not yes:
                return self._run(verb.no_consent or continuation(self.plan, step))
            say = self._say(verb.prompt, False)
            st.waiting = "recording"
            return [say, StartRecording(verb.max_s, say.mark)]
        assert isinstance(verb, Acting)
        if not yes:
            prefix = "callback" if isinstance(verb, Callback) else "tool"
            st.variables[f"{prefix}_status"], st.variables[f"{prefix}_error"] = "declined", ""
            return self._run(verb.on_decline or continuation(self.plan, step))
        out: list[Action] = []
        if isinstance(verb, Callback):
            self._book(verb, out)
        else:
            self._call_tool(verb, out)
        return out

    def _no_match(self, step: Step) -> list[Action]:
        return self._retry(step, "no_match")

    def _retry(self, step: Step, why: Literal["no_input", "no_match"]) -> list[Action]:
        verb, st, h = step.verb, self.state, self.plan.handlers
        if why == "no_input":
            st.no_inputs += 1
        else:
            st.no_matches += 1
        limit, count = (
            (h.max_no_input, st.no_inputs) if why == "no_input" else (h.max_no_match, st.no_matches)
        )
        handler = h.no_input if why == "no_input" else h.no_match
        if limit and count >= limit and handler and step.id != handler:
            return self._run(handler)  # stuck across the call: stop asking, hand over
        if isinstance(verb, Confirmed):
            if st.retries < 1 and not (why == "no_input" and isinstance(verb, Record)):
                st.retries += 1
                out: list[Action] = []
                self._prompt(step, out)
                return out
            return self._confirmed(step, False)  # silence is not consent
        assert isinstance(verb, Menu | Collect)
        if st.retries < verb.retries:
            st.retries, st.digits = st.retries + 1, ""
            again: list[Action] = []
            self._prompt(step, again)
            return again
        target = (verb.no_input if why == "no_input" else verb.no_match) or handler
        return self._run(target) if target else self._end([], f"{why}_exhausted")

    # -- recordings, transfers, tools, endings --------------------------------------------------
    def _recording_done(self, path: str, seconds: float) -> list[Action]:
        st = self.state
        if st.waiting != "recording" or st.step is None:
            return []
        step = self.plan.steps[st.step]
        assert isinstance(step.verb, Record)
        st.variables[step.verb.into] = path
        st.variables[f"{step.verb.into}_s"] = round(seconds, 1)
        return self._run(continuation(self.plan, step))

    def _transfer(self, verb: Transfer, out: list[Action]) -> None:
        st = self.state
        if verb.announce:
            out.append(self._say(verb.announce, False))
            st.waiting, st.after_playback = "playback", f"transfer:{verb.queue}"
        else:
            out.append(self._transfer_action(verb))
            st.waiting = "transfer"

    def _transfer_action(self, verb: Transfer) -> TransferAction:
        v = self.state.variables
        headers = {name: values.render(text, v) for name, text in verb.context.items()}
        return TransferAction(verb.queue, values.render(verb.reason, v), headers)

    def _playback_done(self, mark: str) -> list[Action]:
        st = self.state
        if st.waiting != "playback" or not mark.endswith(f"#{st.marks}"):
            return []
        kind, _, arg = st.after_playback.partition(":")
        st.after_playback = ""
        if kind == "transfer":
            verb = self.plan.steps[st.step or ""].verb
            assert isinstance(verb, Transfer)
            st.waiting = "transfer"
            return [self._transfer_action(verb)]
        return self._end([], arg)

    def _transfer_result(self, ok: bool, reason: str) -> list[Action]:
        st = self.state
        if st.waiting != "transfer" or st.step is None:
            return []
        st.variables["transfer_status"] = "ok" if ok else "failed"
        st.variables["transfer_reason"] = reason
        if ok:
            st.ended, st.disposition, st.waiting = True, "transferred", ""
            return []
        verb = self.plan.steps[st.step].verb
        target = verb.on_failure if isinstance(verb, Transfer) else None
        return self._run(target) if target else self._end([], "transfer_failed")

    def _call_tool(self, verb: Request, out: list[Action], announce: bool = True) -> None:
        spec, v = self.plan.integrations[verb.integration], self.state.variables
        if verb.announce and announce:
            out.append(self._say(verb.announce, True))
        path = PLACEHOLDER.sub(lambda m: urllib.parse.quote(str(v.get(m.group(1), "")), safe=""), verb.path)
        body = None if verb.body is None else {k: values.render_value(x, v) for k, x in verb.body.items()}
        url = spec.base_url.rstrip("/") + path
        out.append(
            ToolCall(
                verb.integration, verb.method, url, body, dict(spec.headers), spec.timeout_s, spec.retries
            )
        )
        self.state.waiting = "tool"

    def _tool_result(self, ok: bool, data: Any) -> list[Action]:
        st = self.state
        if st.waiting != "tool" or st.step is None:
            return []
        step = self.plan.steps[st.step]
        verb = step.verb
        if isinstance(verb, Agent) and st.agent_tool:
            return self._agent_tool_result(step, verb, ok, data)
        if isinstance(verb, Callback):
            return self._booked(step, verb, ok, data)
        assert isinstance(verb, Tool)
        st.variables["tool_status"] = "ok" if ok else "error"
        st.variables["tool_error"] = "" if ok else str(data)[:200]
        if ok:
            for var, dotted in verb.result.items():
                st.variables[var] = values.dig(data, dotted)
            return self._run(continuation(self.plan, step))
        target = verb.on_error or self.plan.handlers.error
        return self._run(target) if target else self._end([], "tool_failed")

    def _book(self, verb: Callback, out: list[Action]) -> None:
        v = self.state.variables
        kept = {name: v[name] for name in verb.keep if isinstance(v.get(name), str | int | float | bool)}
        out.append(
            ScheduleCallback(
                values.render(verb.number, v).strip(),
                values.render(verb.date, v).strip(),
                values.render(verb.time, v).strip(),
                verb.after_s,
                verb.entry,
                kept,
            )
        )
        self.state.waiting = "tool"

    def _booked(self, step: Step, verb: Callback, ok: bool, data: Any) -> list[Action]:
        st = self.state
        info = data if isinstance(data, dict) else {}
        st.variables["callback_status"] = "ok" if ok else str(info.get("status", "error"))
        st.variables["callback_error"] = "" if ok else str(info.get("error", data))[:200]
        if ok:
            st.variables["callback_at"] = str(info.get("at", ""))
            st.variables["callback_number"] = str(info.get("number", ""))
            return self._run(continuation(self.plan, step))
        target = verb.on_error or self.plan.handlers.error
        return self._run(target) if target else self._end([], "callback_failed")

    def _end(self, out: list[Action], disposition: str) -> list[Action]:
        st = self.state
        st.ended, st.disposition, st.waiting = True, disposition, ""
        out.append(HangupAction(disposition))
        return out
