"""What a scripted caller does, taken from a dialplan's conversation tests (pure).

A conversation test is written for the bot's logic (`voicebot dialplan test`); the same turns make
a caller over SIP: `caller:` is spoken (a synthetic voice), `keys:` are sent as RFC 4733 digits,
`silence:` waits for the bot to move on. `expect_transfer` and `expect_hangup` are what the call
must end with; `expect_say` lines are the bot's business (not checked from the caller's side).
Tests that need the far side scripted (an LLM's or a tool's reply, a callback's booking, a message
left) cannot be driven over SIP and are left out, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from voicebot.dialplan.yamlsafe import load
from voicebot.errors import ConfigError

# Test keys that script the bot's side: a SIP caller cannot play them
_FAR_SIDE = ("agent_replies", "agent_fails", "agent_calls", "tool_returns", "tool_fails", "leave_message")
_EXPECTS = ("expect_say", "expect_transfer", "expect_hangup", "expect_callback", "expect_variables")


@dataclass(frozen=True)
class Action:
    kind: Literal["speak", "keys", "silence"]
    value: str = ""


@dataclass(frozen=True)
class Expect:
    """How the call must end: ``transfer`` (to a target containing ``target``), ``hangup`` by the
    bot, or ``any``."""

    outcome: Literal["transfer", "hangup", "any"] = "any"
    target: str = ""


@dataclass(frozen=True)
class CallerScript:
    name: str
    actions: tuple[Action, ...]
    expect: Expect = field(default_factory=Expect)
    # The bot's transfer is refused (603) and the caller goes on, as when the queue is busy
    transfers_fail: bool = False


@dataclass(frozen=True)
class Skipped:
    name: str
    why: str


def from_tests(path: Path, names: list[str] | None = None) -> tuple[list[CallerScript], list[Skipped]]:
    """The callers of a conversation-test file; ``names`` picks tests by name (all by default)."""
    try:
        loaded = load(path.read_bytes(), str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    tests = loaded.data.get("tests") if isinstance(loaded.data, dict) else None
    if not isinstance(tests, list) or not tests:
        raise ConfigError(f"{path}: expected `tests:` with a list of conversation tests")
    scripts: list[CallerScript] = []
    skipped: list[Skipped] = []
    for i, test in enumerate(tests):
        name = str(test.get("name", f"test {i + 1}")) if isinstance(test, dict) else f"test {i + 1}"
        if names and name not in names:
            continue
        made = script_of(name, test)
        if isinstance(made, CallerScript):
            scripts.append(made)
        else:
            skipped.append(made)
    missing = sorted(set(names or ()) - {s.name for s in scripts} - {s.name for s in skipped})
    if missing:
        raise ConfigError(f"{path}: no test named {missing[0]!r}")
    return scripts, skipped


def script_of(name: str, test: object) -> CallerScript | Skipped:
    if not isinstance(test, dict) or not isinstance(test.get("conversation"), list):
        return Skipped(name, "no `conversation` list")
    if test.get("entry") or test.get("variables"):
        return Skipped(name, "starts inside the plan (a placed call's entry): not a call one can dial")
    actions: list[Action] = []
    expect = Expect()
    for entry in test["conversation"]:
        if not isinstance(entry, dict) or len(entry) != 1:
            return Skipped(name, "a conversation entry is not one `key: value`")
        ((key, value),) = entry.items()
        if key in _FAR_SIDE:
            return Skipped(name, f"`{key}` scripts the bot's side (an LLM, a tool, a recording)")
        if key == "caller":
            actions.append(Action("speak", str(value)))
        elif key == "keys":
            digits = str(value)
            if not digits or any(d not in "0123456789*#ABCD" for d in digits):
                return Skipped(name, f"keys {digits!r} are not DTMF digits")
            actions.append(Action("keys", digits))
        elif key == "silence":
            actions.append(Action("silence"))
        elif key == "expect_transfer":
            expect = Expect("transfer", str(value))
        elif key == "expect_hangup":
            expect = Expect("hangup")
        elif key == "expect_callback":
            return Skipped(name, "books a callback (checked by `voicebot dialplan test`)")
        elif key not in _EXPECTS:
            return Skipped(name, f"unknown conversation key {key!r}")
    return CallerScript(name, tuple(actions), expect, not bool(test.get("transfers_succeed", True)))
