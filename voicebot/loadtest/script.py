"""What a scripted caller does, taken from a dialplan's conversation tests or a caller script (pure
but for reading the files).

A conversation test is written for the bot's logic (`voicebot dialplan test`); the same turns make
a caller over SIP: `caller:` is spoken (a synthetic voice), `keys:` are sent as RFC 4733 digits,
`silence:` waits for the bot to move on. `expect_transfer` and `expect_hangup` are what the call
must end with; `expect_say` lines are the bot's business (not checked from the caller's side).
Tests that need the far side scripted (an LLM's or a tool's reply, a callback's booking, a message
left) cannot be driven over SIP and are left out, with the reason.

A caller script (``callers:``) says the same for callers that are not a dialplan's tests, and adds
what a conversation test cannot: recorded turns (``wav:``, relative to the script) and barge-in
(``barge:`` words or ``barge_wav:`` a recording, spoken while the bot talks, to measure how soon it
stops)::

    callers:
      - name: sales from a recording
        turns:
          - barge: sales please          # over the greeting: how soon does the bot stop?
          - wav: recordings/support.wav  # 16-bit PCM WAV, any rate, mono or stereo
          - keys: "2"
          - say: goodbye
          - silence: true
        expect: {transfer: support}     # or {hangup: true}; transfers_fail: true goes on after a REFER
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from voicebot.dialplan.yamlsafe import load
from voicebot.errors import ConfigError
from voicebot.media.audiofile import read_pcm16

# Test keys that script the bot's side: a SIP caller cannot play them
_FAR_SIDE = ("agent_replies", "agent_fails", "agent_calls", "tool_returns", "tool_fails", "leave_message")
_EXPECTS = ("expect_say", "expect_transfer", "expect_hangup", "expect_callback", "expect_variables")


@dataclass(frozen=True)
class Action:
    kind: Literal["speak", "wav", "keys", "silence", "barge", "barge_wav"]
    value: str = ""  # the words, the digits, or a WAV file's absolute path

    @property
    def barges_in(self) -> bool:
        return self.kind in ("barge", "barge_wav")


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
    """The callers of a conversation-test file (``tests:``) or a caller script (``callers:``);
    ``names`` picks them by name (all by default)."""
    try:
        loaded = load(path.read_bytes(), str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if isinstance(loaded.data, dict) and "callers" in loaded.data:
        return from_callers(path, loaded.data["callers"], names), []
    tests = loaded.data.get("tests") if isinstance(loaded.data, dict) else None
    if not isinstance(tests, list) or not tests:
        raise ConfigError(f"{path}: expected `tests:` (conversation tests) or `callers:` (a caller script)")
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


_TURN_KEYS = {"say": "speak", "wav": "wav", "keys": "keys", "silence": "silence", "barge": "barge"}
_TURN_KEYS["barge_wav"] = "barge_wav"


def from_callers(path: Path, callers: object, names: list[str] | None = None) -> list[CallerScript]:
    """A caller script's callers; a ConfigError naming the caller and turn for anything wrong (a WAV
    that is not there or not 16-bit PCM included: found now, not in the middle of a run)."""
    if not isinstance(callers, list) or not callers:
        raise ConfigError(f"{path}: `callers:` must be a list of callers")
    scripts = []
    for i, caller in enumerate(callers):
        where = f"{path}: callers[{i}]"
        if not isinstance(caller, dict) or not isinstance(caller.get("turns"), list):
            raise ConfigError(f"{where}: needs `name` and a `turns` list")
        unknown = set(caller) - {"name", "turns", "expect", "transfers_fail"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        name = str(caller.get("name") or f"caller {i + 1}")
        if names and name not in names:
            continue
        actions = [_turn(path, f"{where}.turns[{j}]", t) for j, t in enumerate(caller["turns"])]
        scripts.append(
            CallerScript(
                name, tuple(actions), _expect(where, caller.get("expect")), bool(caller.get("transfers_fail"))
            )
        )
    missing = sorted(set(names or ()) - {s.name for s in scripts})
    if missing:
        raise ConfigError(f"{path}: no caller named {missing[0]!r}")
    return scripts


def _turn(path: Path, where: str, turn: object) -> Action:
    if not isinstance(turn, dict) or len(turn) != 1:
        raise ConfigError(f"{where}: a turn is one of {', '.join(_TURN_KEYS)}: VALUE")
    ((key, value),) = turn.items()
    kind = _TURN_KEYS.get(str(key))
    if kind is None:
        raise ConfigError(f"{where}: unknown turn {key!r} (one of {', '.join(_TURN_KEYS)})")
    if kind == "keys":
        digits = str(value)
        if not digits or any(d not in "0123456789*#ABCD" for d in digits):
            raise ConfigError(f"{where}: keys {digits!r} are not DTMF digits")
        return Action("keys", digits)
    if kind == "silence":
        return Action("silence")
    if kind in ("wav", "barge_wav"):
        wav = (path.parent / str(value)).resolve()
        try:
            read_pcm16(wav, str(value), max_seconds=60)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return Action(kind, str(wav))  # type: ignore[arg-type]
    if not str(value).strip():
        raise ConfigError(f"{where}: {key} needs words to say")
    return Action(kind, str(value))  # type: ignore[arg-type]


def _expect(where: str, expect: object) -> Expect:
    if expect is None:
        return Expect()
    if isinstance(expect, dict) and set(expect) == {"transfer"}:
        return Expect("transfer", str(expect["transfer"]))
    if isinstance(expect, dict) and expect == {"hangup": True}:
        return Expect("hangup")
    raise ConfigError(f"{where}: expect is {{transfer: QUEUE}} or {{hangup: true}}")
