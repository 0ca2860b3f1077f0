"""The hand-off between a node's job worker (dialer) and its UA workers: files in run_dir/outbound.

queue/<id>.json     a call to place, written whole (temp file + rename) by the dialer
claimed/<id>.json   taken by one UA worker: rename is atomic, so two workers never dial the same call,
                    and a dialer that gives up renames an unclaimed request away (it is never dialled late)
outcomes/<id>.json  what became of it (ringing, answered, failed, ended), rewritten by the UA worker

Files, because the job worker and the UA workers are separate processes of the node that outlive
each other: a UA worker that restarts finds the queue as it was; a dialer that restarts counts the
calls still up from the outcomes (their UA worker's pid still alive).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voicebot.procutil import pid_alive

State = Literal["claimed", "ringing", "answered", "failed", "ended"]
LIVE: tuple[State, ...] = ("claimed", "ringing", "answered")
KEEP_DONE_S = 600.0  # finished outcomes are removed after this


class Dial(BaseModel):
    """One call to place."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    number: str = Field(pattern=r"^\+[0-9]{4,15}$")  # E.164, checked by the destination policy
    trunk: str  # the UA worker dials its own settings' URI of this trunk, with the number in it
    caller_id: str = ""
    dialplan: str
    entry: str = ""
    variables: dict[str, str | int | float | bool] = Field(default_factory=dict)
    ring_timeout_s: float = 30.0
    not_after: float  # epoch: a request found later is dropped (its dialer gave up on it)


class Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    trunk: str
    state: State
    code: int = 0
    reason: str = ""
    call_id: str = ""  # the voicebot call id once placed
    pid: int = 0  # the UA worker's
    at: float = 0.0


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.queue, self.claimed, self.outcomes = root / "queue", root / "claimed", root / "outcomes"

    def ensure(self) -> Spool:
        for d in (self.root, self.queue, self.claimed, self.outcomes):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            d.chmod(0o700)  # numbers to dial: this node's processes only
        return self

    @staticmethod
    def _write(path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    # -- dialer side --------------------------------------------------------------------------
    def submit(self, dial: Dial) -> None:
        self._write(self.queue / f"{dial.id}.json", dial.model_dump_json())

    def withdraw(self, dial_id: str) -> bool:
        """Take back a request no UA worker claimed; False when one did (its outcome will come)."""
        src = self.queue / f"{dial_id}.json"
        try:
            os.rename(src, self.claimed / f"{dial_id}.withdrawn")
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):
            (self.claimed / f"{dial_id}.withdrawn").unlink()
        return True

    def outcome(self, dial_id: str) -> Outcome | None:
        try:
            return Outcome.model_validate_json((self.outcomes / f"{dial_id}.json").read_text())
        except (OSError, ValidationError):
            return None

    def live(self, trunk: str, now: float) -> int:
        """Calls of ``trunk`` queued or up on this node (their UA worker still alive); old finished
        outcomes are removed on the way."""
        count = 0
        for path in self.queue.glob("*.json"):
            with contextlib.suppress(OSError, ValidationError):
                count += Dial.model_validate_json(path.read_text()).trunk == trunk
        for path in self.outcomes.glob("*.json"):
            try:
                out = Outcome.model_validate_json(path.read_text())
            except (OSError, ValidationError):
                continue
            if out.state in LIVE and pid_alive(out.pid):
                count += out.trunk == trunk
            elif now - out.at > KEEP_DONE_S:
                with contextlib.suppress(OSError):
                    path.unlink()
                    (self.claimed / f"{out.id}.json").unlink()
        return count

    # -- UA worker side -----------------------------------------------------------------------
    def claim(self, pid: int, now: float) -> Dial | None:
        """The oldest request, taken by this worker; expired or unreadable ones are dropped."""
        try:
            paths = sorted(self.queue.glob("*.json"), key=lambda p: p.stat().st_mtime)
        except OSError:
            return None
        for path in paths:
            target = self.claimed / path.name
            try:
                os.rename(path, target)
            except FileNotFoundError:
                continue  # another UA worker took it
            try:
                dial = Dial.model_validate_json(target.read_text())
            except (OSError, ValidationError):
                with contextlib.suppress(OSError):
                    target.unlink()
                continue
            if dial.not_after < now:
                self.report(Outcome(id=dial.id, trunk=dial.trunk, state="failed", reason="expired", pid=pid))
                continue
            self.report(Outcome(id=dial.id, trunk=dial.trunk, state="claimed", pid=pid))
            return dial
        return None

    def report(self, outcome: Outcome) -> None:
        if not outcome.at:
            outcome = outcome.model_copy(update={"at": time.time()})
        with contextlib.suppress(OSError):
            self._write(self.outcomes / f"{outcome.id}.json", outcome.model_dump_json())
