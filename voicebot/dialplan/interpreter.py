"""The dialplan interpreter (sans-I/O): events with ``now`` in, actions out.

Deterministic; its whole state is a plain pydantic model (``State``) that serialises to JSON, so a
later issue can checkpoint a call and resume it in another worker.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from voicebot.dialplan import conditions
from voicebot.dialplan.check import continuation
from voicebot.dialplan.plan import Plan, Step
from voicebot.dialplan.verbs.basic import Branch, Collect, Goto, Hangup, Menu, Say, Set, Transfer
from voicebot.dialplan.verbs.conversation import Agent, Record
from voicebot.dialplan.verbs.tool import Tool

MAX_STEPS_PER_EVENT = 200  # the checker rejects loops that never wait; this is the runtime backstop


# --- events -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CallStarted:
    now: float


@dataclass(frozen=True)
class SpeechFinal:
    text: str
    confidence: float
    now: float


@dataclass(frozen=True)
class Dtmf:
    digit: str
    now: float


@dataclass(frozen=True)
class NoInputTimeout:
    now: float


@dataclass(frozen=True)
class PlaybackDone:
    mark: str
    now: float


@dataclass(frozen=True)
class TransferResult:
    ok: bool
    now: float


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    data: Any
    now: float


@dataclass(frozen=True)
class RecordingDone:
    path: str  # "" when nothing was recorded
    seconds: float
    now: float


@dataclass(frozen=True)
class CallerHungUp:
    now: float


Event = (
    CallStarted
    | SpeechFinal
    | Dtmf
    | NoInputTimeout
    | PlaybackDone
    | TransferResult
    | ToolResult
    | RecordingDone
    | CallerHungUp
)


# --- actions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SayAction:
    text: str
    barge_in: bool
    mark: str
    audio: str | None = None  # a checked WAV file to play instead of synthesising ``text``


@dataclass(frozen=True)
class StartCollect:
    """Listen for the caller: arm the no-input timer, bias recognition with ``hints``."""

    kind: str
    timeout_s: float
    hints: tuple[str, ...] = ()
    max_digits: int = 1
    terminator: str = "#"
    sensitive: bool = False


@dataclass(frozen=True)
class TransferAction:
    queue: str
    reason: str


@dataclass(frozen=True)
class HangupAction:
    disposition: str


@dataclass(frozen=True)
class ToolCall:
    """Call an HTTP integration; the worker answers with ToolResult. URL and body are already rendered."""

    integration: str
    method: str
    url: str
    body: dict[str, Any] | None
    headers: dict[str, str]
    timeout_s: float
    retries: int


@dataclass(frozen=True)
class StartRecording:
    """Record the caller (after the tone) until # or ``max_s``; answer with RecordingDone."""

    max_s: float
    after_mark: str


Action = SayAction | StartCollect | TransferAction | HangupAction | ToolCall | StartRecording


class State(BaseModel):
    """Everything the interpreter remembers about one call (JSON-serialisable)."""

    plan_id: str
    plan_version: int
    plan_hash: str
    step: str | None = None
    waiting: Literal["", "input", "playback", "transfer", "tool", "recording"] = ""
    after_playback: str = ""  # "hangup:<disposition>" or "transfer:<queue>"
    retries: int = 0
    digits: str = ""
    variables: dict[str, Any] = Field(default_factory=dict)
    marks: int = 0
    ended: bool = False
    disposition: str = ""


class Interpreter:
    def __init__(self, plan: Plan, state: State | None = None) -> None:
        self.plan = plan
        self.state = state or State(
            plan_id=plan.id,
            plan_version=plan.version,
            plan_hash=plan.content_hash,
            variables=dict(plan.variables),
        )

    # -- public ------------------------------------------------------------------------------
    def handle(self, event: Event) -> list[Action]:
        st = self.state
        if st.ended:
            return []
        if isinstance(event, CallerHungUp):
            st.ended, st.disposition = True, "caller_hung_up"
            return []
        if isinstance(event, CallStarted):
            return self._run(self.plan.start)
        if isinstance(event, PlaybackDone):
            return self._playback_done(event.mark)
        if isinstance(event, TransferResult):
            return self._transfer_result(event.ok)
        if isinstance(event, ToolResult):
            return self._tool_result(event.ok, event.data)
        if isinstance(event, RecordingDone):
            return self._recording_done(event.path, event.seconds)
        if st.waiting != "input" or st.step is None:
            return []
        step = self.plan.steps[st.step]
        if isinstance(event, NoInputTimeout):
            return self._retry(step, "no_input")
        if self._asks_for_agent(step, event):
            return self._run(self.plan.handlers.agent)
        if isinstance(event, Dtmf):
            return self._dtmf(step, event.digit)
        return self._speech(step, event.text, event.confidence)

    def _asks_for_agent(self, step: Step, event: Dtmf | SpeechFinal) -> bool:
        """The plan-wide 'a person, please' handler, unless the current menu uses that key/word itself."""
        h = self.plan.handlers
        if h.agent is None:
            return False
        local = step.verb.options if isinstance(step.verb, Menu) else []
        if isinstance(event, Dtmf):
            return (
                event.digit == h.agent_key
                and all(o.keys != h.agent_key for o in local)
                and not (isinstance(step.verb, Collect) and step.verb.kind == "digits")
            )
        words = {w.strip(".,!?;:'\"").lower() for w in event.text.split()}
        taken = {w.lower() for o in local for w in o.words}
        return bool(words & ({w.lower() for w in h.agent_words} - taken))

    # -- running steps -----------------------------------------------------------------------
    def _run(self, step_id: str | None, actions: list[Action] | None = None) -> list[Action]:
        out = actions or []
        st = self.state
        for _ in range(MAX_STEPS_PER_EVENT):
            if step_id is None:
                return self._end(out, "completed")
            step = self.plan.steps[step_id]
            st.step, st.waiting, st.retries, st.digits = step_id, "", 0, ""
            nxt = self._execute(step, out)
            if st.waiting or st.ended:
                return out
            step_id = nxt
        if self.plan.handlers.error and st.step != self.plan.handlers.error:
            return self._run(self.plan.handlers.error, out)
        return self._end(out, "error_loop")

    def _execute(self, step: Step, out: list[Action]) -> str | None:
        verb, st = step.verb, self.state
        if isinstance(verb, Say):
            out.append(self._say(verb.text or "", verb.barge_in, verb.audio))
        elif isinstance(verb, Set):
            st.variables.update(verb.values)
        elif isinstance(verb, Goto):
            return verb.step
        elif isinstance(verb, Branch):
            for case in verb.cases:
                if conditions.evaluate(case.when, st.variables):
                    return case.goto
            return verb.default
        elif isinstance(verb, Menu | Collect | Record):
            self._prompt(step, out)
        elif isinstance(verb, Agent):
            # Run by the LLM agent (a later issue); until then, the plan's error path.
            target = verb.on_error or self.plan.handlers.error
            if target is None:
                self._end(out, "agent_unavailable")
            return target
        elif isinstance(verb, Transfer):
            if verb.announce:
                out.append(self._say(verb.announce, False))
                st.waiting, st.after_playback = "playback", f"transfer:{verb.queue}"
            else:
                out.append(TransferAction(verb.queue, _render(verb.reason, st.variables)))
                st.waiting = "transfer"
        elif isinstance(verb, Tool):
            if verb.announce:
                out.append(self._say(verb.announce, True))
            out.append(self._tool_call(verb))
            st.waiting = "tool"
        elif isinstance(verb, Hangup):
            if verb.say:
                out.append(self._say(verb.say, False))
                st.waiting, st.after_playback = "playback", f"hangup:{verb.disposition}"
            else:
                self._end(out, verb.disposition)
        return continuation(self.plan, step)

    def _say(self, text: str, barge_in: bool | None, audio: str | None = None) -> SayAction:
        self.state.marks += 1
        rendered = _render(text, self.state.variables)
        allowed = self.plan.settings.barge_in if barge_in is None else barge_in
        return SayAction(rendered, allowed, f"{self.state.step}#{self.state.marks}", audio)

    def _prompt(self, step: Step, out: list[Action]) -> None:
        verb = step.verb
        assert isinstance(verb, Menu | Collect | Record)
        if isinstance(verb, Record):
            out.append(self._say(verb.consent, None))
            out.append(StartCollect("yes_no", self.plan.settings.no_input_timeout_s, ("yes", "no")))
            self.state.waiting = "input"
            return
        retry = self.state.retries
        text = (
            verb.reprompts[min(retry, len(verb.reprompts)) - 1] if retry and verb.reprompts else verb.prompt
        )
        out.append(self._say(text, None))
        if isinstance(verb, Menu):
            hints = tuple(w for o in verb.options for w in o.words)
            out.append(StartCollect("menu", verb.timeout_s, hints))
        else:
            out.append(
                StartCollect(
                    verb.kind,
                    verb.timeout_s,
                    tuple(verb.choices),
                    verb.max_digits,
                    verb.terminator,
                    verb.sensitive,
                )
            )
        self.state.waiting = "input"

    # -- caller input --------------------------------------------------------------------------
    def _consent(self, step: Step, yes: bool) -> list[Action]:
        verb = step.verb
        assert isinstance(verb, Record)
        if not yes:
            return self._run(verb.no_consent) if verb.no_consent else self._run(continuation(self.plan, step))
        say = self._say(verb.prompt, False)
        self.state.waiting = "recording"
        return [say, StartRecording(verb.max_s, say.mark)]

    def _recording_done(self, path: str, seconds: float) -> list[Action]:
        st = self.state
        if st.waiting != "recording" or st.step is None:
            return []
        step = self.plan.steps[st.step]
        assert isinstance(step.verb, Record)
        st.variables[step.verb.into] = path
        st.variables[f"{step.verb.into}_s"] = round(seconds, 1)
        return self._run(continuation(self.plan, step))

    def _dtmf(self, step: Step, digit: str) -> list[Action]:
        verb, st = step.verb, self.state
        if isinstance(verb, Record):
            return self._consent(step, digit == "1")
        if isinstance(verb, Menu):
            option = next((o for o in verb.options if o.keys == digit), None)
            return self._run(option.goto) if option else self._retry(step, "no_match")
        assert isinstance(verb, Collect)
        if digit == verb.terminator or len(st.digits) + 1 >= verb.max_digits:
            value = st.digits if digit == verb.terminator else st.digits + digit
            if len(value) < verb.min_digits:
                return self._retry(step, "no_match")
            return self._store(step, value)
        st.digits += digit
        return []

    def _speech(self, step: Step, text: str, confidence: float = 1.0) -> list[Action]:
        verb = step.verb
        words = {w.strip(".,!?;:'\"").lower() for w in text.split()}
        if isinstance(verb, Record):
            return self._consent(step, bool(words & {"yes", "yeah", "sure", "ok", "okay"}))
        if isinstance(verb, Menu):
            option = next((o for o in verb.options if words & {w.lower() for w in o.words}), None)
            return self._run(option.goto) if option else self._retry(step, "no_match")
        assert isinstance(verb, Collect)
        if confidence < verb.min_confidence:
            return self._retry(step, "no_match")
        if verb.kind == "yes_no":
            yes, no = words & {"yes", "yeah", "yep", "correct", "right"}, words & {"no", "nope", "wrong"}
            return self._store(step, bool(yes)) if bool(yes) != bool(no) else self._retry(step, "no_match")
        if verb.kind == "choice":
            choice = next((c for c in verb.choices if c.lower() in words), None)
            return self._store(step, choice) if choice else self._retry(step, "no_match")
        if verb.kind in ("digits", "number"):
            digits = "".join(ch for ch in text if ch.isdigit())
            return self._store(step, digits) if digits else self._retry(step, "no_match")
        return self._store(step, text.strip())

    def _store(self, step: Step, value: Any) -> list[Action]:
        verb = step.verb
        assert isinstance(verb, Collect)
        if verb.validate_pattern and not re.fullmatch(verb.validate_pattern, str(value)):
            return self._retry(step, "no_match")
        self.state.variables[verb.into] = value
        return self._run(continuation(self.plan, step))

    def _retry(self, step: Step, why: Literal["no_input", "no_match"]) -> list[Action]:
        verb, st = step.verb, self.state
        if isinstance(verb, Record):
            return self._consent(step, False)  # silence is not consent
        assert isinstance(verb, Menu | Collect)
        if st.retries < verb.retries:
            st.retries, st.digits = st.retries + 1, ""
            out: list[Action] = []
            self._prompt(step, out)
            return out
        target = verb.no_input if why == "no_input" else verb.no_match
        target = target or (self.plan.handlers.no_input if why == "no_input" else self.plan.handlers.no_match)
        return self._run(target) if target else self._end([], f"{why}_exhausted")

    # -- endings -----------------------------------------------------------------------------------
    def _playback_done(self, mark: str) -> list[Action]:
        st = self.state
        if st.waiting != "playback" or not mark.endswith(f"#{st.marks}"):
            return []
        kind, _, arg = st.after_playback.partition(":")
        st.after_playback = ""
        if kind == "transfer":
            verb = self.plan.steps[st.step or ""].verb
            st.waiting = "transfer"
            return [
                TransferAction(arg, _render(verb.reason, st.variables) if isinstance(verb, Transfer) else "")
            ]
        return self._end([], arg)

    def _transfer_result(self, ok: bool) -> list[Action]:
        st = self.state
        if st.waiting != "transfer" or st.step is None:
            return []
        if ok:
            st.ended, st.disposition, st.waiting = True, "transferred", ""
            return []
        verb = self.plan.steps[st.step].verb
        target = verb.on_failure if isinstance(verb, Transfer) else None
        return self._run(target) if target else self._end([], "transfer_failed")

    def _tool_call(self, verb: Tool) -> ToolCall:
        spec = self.plan.integrations[verb.integration]
        path = re.sub(
            r"\{([a-z_][a-z0-9_]*)\}",
            lambda m: urllib.parse.quote(str(self.state.variables.get(m.group(1), "")), safe=""),
            verb.path,
        )
        body = {
            k: _render(v, self.state.variables) if isinstance(v, str) else v
            for k, v in (verb.body or {}).items()
        }
        return ToolCall(
            verb.integration,
            verb.method,
            spec.base_url.rstrip("/") + path,
            body if verb.body is not None else None,
            dict(spec.headers),
            spec.timeout_s,
            spec.retries,
        )

    def _tool_result(self, ok: bool, data: Any) -> list[Action]:
        st = self.state
        if st.waiting != "tool" or st.step is None:
            return []
        step = self.plan.steps[st.step]
        verb = step.verb
        assert isinstance(verb, Tool)
        if ok:
            for var, dotted in verb.result.items():
                st.variables[var] = _dig(data, dotted)
            return self._run(continuation(self.plan, step))
        target = verb.on_error or self.plan.handlers.error
        return self._run(target) if target else self._end([], "tool_failed")

    def _end(self, out: list[Action], disposition: str) -> list[Action]:
        st = self.state
        st.ended, st.disposition, st.waiting = True, disposition, ""
        out.append(HangupAction(disposition))
        return out


def _dig(data: Any, dotted: str) -> Any:
    """`customer.name` / `items.0.id` from a JSON reply; None where the path does not exist."""
    for part in dotted.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _render(text: str, variables: dict[str, Any]) -> str:
    """`{name}` placeholders from variables; no expressions, no attribute access (sandboxed by design)."""
    return re.sub(r"\{([a-z_][a-z0-9_]*)\}", lambda m: str(variables.get(m.group(1), "")), text)
