"""`voicebot chat PATH`: type what the caller says, `#123` for keys, an empty line for silence."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable

from voicebot.dialplan.check import sensitive_variables
from voicebot.dialplan.driver import Driver, Turn
from voicebot.dialplan.events import AgentTurn
from voicebot.dialplan.plan import Plan


def show(
    turn: Turn,
    out: Callable[[str], None],
    changed: dict[str, object],
    hidden: frozenset[str] = frozenset(),
) -> None:
    """Print one turn: what the bot said and did, and the variables it changed (sensitive ones masked)."""
    for text in turn.said:
        out(f"bot> {text}")
    if turn.listening:
        hints = f" hints={list(turn.listening.hints)}" if turn.listening.hints else ""
        out(f"     [listening: {turn.listening.kind}, {turn.listening.timeout_s:g} s{hints}]")
    if turn.tool:
        out(
            f"     [tool call: {turn.tool.method} {turn.tool.url}; answer with !{{json}}, or ! for a failure]"
        )
    if turn.transfer_action:
        a = turn.transfer_action
        context = f", context {a.headers}" if a.headers else ""
        out(f"     [transfer to queue {a.queue!r}, reason {a.reason!r}{context}]")
    if turn.agent:
        n = len(turn.agent.messages)
        out(f"     [LLM turn ({n} message(s) so far): type its reply as >text, or > for a failure]")
    if turn.hangup:
        out(f"     [hang up: {turn.hangup}]")
    if changed:
        shown = {k: "****" if k in hidden and v else v for k, v in changed.items()}
        out("     vars: " + ", ".join(f"{k}={v!r}" for k, v in shown.items()))


class _Changes:
    """The variables that changed since the last turn shown."""

    def __init__(self, variables: dict[str, object]) -> None:
        self.variables, self.seen = variables, dict(variables)

    def __call__(self) -> dict[str, object]:
        changed = {k: v for k, v in self.variables.items() if self.seen.get(k, _Changes) != v}
        self.seen = dict(self.variables)
        return changed


def run_chat(
    plan: Plan,
    lines: Iterable[str],
    out: Callable[[str], None],
    transfers_succeed: bool = True,
    today: str | None = None,
    llm: Callable[[AgentTurn], str | None] | None = None,
) -> int:
    """Talk to ``plan``: each line is what the caller says (``#12`` keys, ``!{json}`` a tool reply,
    ``>text`` the LLM's reply). With ``llm``, agent steps ask it instead (None: it failed)."""
    driver = Driver(plan, transfers_succeed, today if today is not None else dt.date.today().isoformat())
    out(f"{plan.id} v{plan.version} ({plan.content_hash}); type what the caller says, #digits for keys")
    hidden = frozenset(sensitive_variables(plan))
    changes = _Changes(driver.it.state.variables)
    out(f"     vars: {', '.join(f'{k}={v!r}' for k, v in driver.it.state.variables.items()) or 'none'}")
    turn = driver.start()
    show(turn, out, changes(), hidden)
    turn = _ask_llm(driver, turn, llm, out, changes, hidden)
    for raw in lines:
        if driver.ended:
            break
        line = raw.strip()
        if line.startswith(">"):
            turn = driver.agent_reply(line[1:].strip(), bool(line[1:].strip()))
        elif line.startswith("!"):
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
        show(turn, out, changes(), hidden)
        turn = _ask_llm(driver, turn, llm, out, changes, hidden)
    out(f"[call over: {driver.it.state.disposition or 'caller left'}]")
    return 0


def _ask_llm(
    driver: Driver,
    turn: Turn,
    llm: Callable[[AgentTurn], str | None] | None,
    out: Callable[[str], None],
    changes: _Changes,
    hidden: frozenset[str],
) -> Turn:
    """While the plan waits for the LLM and one is configured, let it answer (and show that)."""
    while llm is not None and turn.agent is not None and not driver.ended:
        reply = llm(turn.agent)
        turn = driver.agent_reply(reply or "", reply is not None)
        show(turn, out, changes(), hidden)
    return turn
