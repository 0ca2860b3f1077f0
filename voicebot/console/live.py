"""The calls up now on this node, as the console shows them.

Each UA worker writes ``<run_dir>/live/ua-<index>.json`` (atomically, only when something changed:
a call rang, was answered, began a transfer or ended) from its housekeeping tick; the console reads
every file whose writer is still alive (a UA worker that died leaves its file behind, and the
supervisor's restart replaces it)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from voicebot.logs import get_logger, masked_number
from voicebot.procutil import pid_alive

log = get_logger(__name__)


def leg_state(answered: bool, outbound: bool, transferring: bool, ended: bool) -> str:
    if ended:
        return "ending"
    if not answered:
        return "dialling" if outbound else "ringing"
    return "transferring" if transferring else "talking"


class LiveFile:
    """The UA worker's side: never raises (the console is not the calls' business)."""

    def __init__(self, path: Path, ua_index: int) -> None:
        self.path, self.ua_index = path, ua_index
        self._last: list[dict[str, Any]] | None = None
        self._failed = False

    def update(self, calls: list[dict[str, Any]]) -> None:
        if calls == self._last:
            return
        doc = {"pid": os.getpid(), "ua": self.ua_index, "written": time.time(), "calls": calls}
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".live-")
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh)
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._failed:
                log.warning("console.live_not_written", file=str(self.path), error=str(exc))
            self._failed = True
            return
        self._last, self._failed = calls, False


def read(run_dir: Path) -> list[dict[str, Any]]:
    """Every call up now on this node, oldest first, each with its UA worker's index."""
    calls: list[dict[str, Any]] = []
    for path in sorted((run_dir / "live").glob("ua-*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced, or the writer died mid-way: the next read has it
        if not isinstance(doc, dict) or not pid_alive(int(doc.get("pid", 0) or 0)):
            continue
        calls += [{**c, "ua": doc.get("ua")} for c in doc.get("calls", []) if isinstance(c, dict)]
    return sorted(calls, key=lambda c: float(c.get("started", 0)))


def rows(calls: Iterable[dict[str, Any]], now: float, show_numbers: bool) -> list[dict[str, Any]]:
    return [
        c
        | {
            "caller": c.get("caller", "") if show_numbers else masked_number(str(c.get("caller", ""))),
            "age_s": max(0.0, now - float(c.get("started", now))),
        }
        for c in calls
    ]
