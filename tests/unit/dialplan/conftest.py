"""Fixtures for dialplan unit tests: plans from text, and a scripted caller for timelines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from voicebot.dialplan.events import (
    Action,
    CallStarted,
    Dtmf,
    Event,
    NoInputTimeout,
    PlaybackDone,
    SayAction,
    SpeechFinal,
)
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.plan import Plan, parse

HEAD = "id: t\nversion: 1\nqueues: [sales, support]\n"


@dataclass
class Call:
    """One scripted call: every say is acknowledged at once; ``log`` keeps all actions in order."""

    it: Interpreter
    now: float = 0.0
    log: list[Action] = field(default_factory=list)

    def feed(self, event: Event) -> list[Action]:
        out = self.it.handle(event)
        self.log += out
        for action in list(out):
            if isinstance(action, SayAction):
                out += self.feed(PlaybackDone(action.mark, self.now))
        return out

    def start(self, today: str = "2026-11-24") -> list[Action]:
        return self.feed(CallStarted(self.now, caller="+15550100", call_id="c1", today=today))

    def say(self, text: str, confidence: float = 0.95) -> list[Action]:
        self.now += 1
        return self.feed(SpeechFinal(text, confidence, self.now))

    def keys(self, digits: str) -> list[Action]:
        out: list[Action] = []
        for d in digits:
            self.now += 0.2
            out += self.feed(Dtmf(d, self.now))
        return out

    def silence(self) -> list[Action]:
        self.now += 6
        return self.feed(NoInputTimeout(self.now))

    @property
    def vars(self) -> dict[str, object]:
        return self.it.state.variables


@pytest.fixture
def plan_from() -> Callable[..., Plan]:
    """plan_from(steps_yaml, head=HEAD, file=...) -> a parsed Plan."""

    def make(steps: str, head: str = HEAD, file: str = "plan.yaml") -> Plan:
        return parse(head + "steps:\n" + steps, file)

    return make


@pytest.fixture
def call_of(plan_from: Callable[..., Plan]) -> Callable[..., Call]:
    """call_of(steps_yaml, head=HEAD) -> a started-later scripted Call."""

    def make(steps: str, head: str = HEAD) -> Call:
        return Call(Interpreter(plan_from(steps, head)))

    return make


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """write(name, text) -> a file under tmp_path."""

    def make(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return make
