"""`voicebot chat PATH`: type what the caller says, `#123` for keys, an empty line for silence."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from voicebot.dialplan.driver import Driver, Turn
from voicebot.dialplan.plan import Plan


def show(turn: Turn, out: Callable[[str], None], variables: dict[str, object]) -> None:
    for text in turn.said:
        out(f"bot> {text}")
    if turn.listening:
        hints = f" hints={list(turn.listening.hints)}" if turn.listening.hints else ""
        out(f"     [listening: {turn.listening.kind}, {turn.listening.timeout_s:g} s{hints}]")
    if turn.tool:
        out(
            f"     [tool call: {turn.tool.method} {turn.tool.url}; answer with !{{json}}, or ! for a failure]"
        )
    if turn.transfer:
        out(f"     [transfer to queue {turn.transfer!r}]")
    if turn.hangup:
        out(f"     [hang up: {turn.hangup}]")
    out(f"     vars={variables}")


def run_chat(
    plan: Plan, lines: Iterable[str], out: Callable[[str], None], transfers_succeed: bool = True
) -> int:
    driver = Driver(plan, transfers_succeed)
    out(f"{plan.id} v{plan.version} ({plan.content_hash}); type what the caller says, #digits for keys")
    show(driver.start(), out, driver.it.state.variables)
    for raw in lines:
        if driver.ended:
            break
        line = raw.strip()
        if line.startswith("!"):
            try:
                turn = driver.tool_result(bool(line[1:]), json.loads(line[1:]) if line[1:] else "failed")
            except json.JSONDecodeError as exc:
                out(f"     [not JSON: {exc.msg}]")
                continue
        elif line.startswith("#") and len(line) > 1:
            turn = driver.press(line[1:])
        elif not line:
            turn = driver.silence()
        else:
            turn = driver.say(line)
        show(turn, out, driver.it.state.variables)
    out(f"[call over: {driver.it.state.disposition or 'caller left'}]")
    return 0
