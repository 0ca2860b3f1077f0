"""Dialplan versions: publish (checked first), canary a share of new calls, promote, roll back.

A store is a directory: ``<root>/<plan id>/<version>-<hash>.yaml`` holds every published content
(immutable), ``<root>/<plan id>/state.json`` says which is live, which is the canary and for what
percentage of new calls, and the history to roll back to. A broken file is never published: the
live version stays. A call keeps the version it started with (it holds the parsed plan).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.dialplan.check import check_plan
from voicebot.dialplan.plan import Plan, parse
from voicebot.dialplan.yamlsafe import YamlError
from voicebot.errors import VoicebotError


class VersionError(VoicebotError):
    """A publish/promote/rollback that cannot happen; the message says why."""


@dataclass
class StoreState:
    live: str | None = None
    canary: str | None = None
    canary_percent: int = 0
    history: list[str] = field(default_factory=list)  # previous live refs, newest last

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1)


class VersionStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def state(self, plan_id: str) -> StoreState:
        path = self.root / plan_id / "state.json"
        if not path.is_file():
            return StoreState()
        data: dict[str, Any] = json.loads(path.read_text())
        return StoreState(**data)

    def _save(self, plan_id: str, state: StoreState) -> None:
        folder = self.root / plan_id
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder)
        with os.fdopen(fd, "w") as fh:
            fh.write(state.to_json())
        os.replace(tmp, folder / "state.json")  # atomic: workers never read half a state

    def publish(
        self, source: Path, canary_percent: int | None = None, known_queues: list[str] | None = None
    ) -> tuple[Plan, str]:
        """Check ``source``; store it; make it live, or the canary for ``canary_percent`` % of calls."""
        raw = source.read_bytes()
        try:
            plan = parse(raw, str(source))
        except YamlError as exc:
            raise VersionError(f"not published, {source} has errors:\n{exc}") from None
        errors = [d for d in check_plan(plan, known_queues) if d.severity == "error"]
        if errors:
            raise VersionError("not published, the checker found:\n" + "\n".join(map(str, errors)))
        ref = f"{plan.version}-{hashlib.sha256(raw).hexdigest()[:12]}"
        target = self.root / plan.id / f"{ref}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.write_bytes(raw)
        st = self.state(plan.id)
        if canary_percent is None:
            if st.live and st.live != ref:
                st.history.append(st.live)
            st.live, st.canary, st.canary_percent = ref, None, 0
        else:
            if not 0 < canary_percent <= 100:
                raise VersionError("canary percentage must be 1..100")
            if st.live is None:
                raise VersionError(f"{plan.id} has no live version yet: publish one before a canary")
            st.canary, st.canary_percent = ref, canary_percent
        self._save(plan.id, st)
        return plan, ref

    def promote(self, plan_id: str) -> str:
        st = self.state(plan_id)
        if st.canary is None:
            raise VersionError(f"{plan_id} has no canary to promote")
        if st.live:
            st.history.append(st.live)
        st.live, st.canary, st.canary_percent = st.canary, None, 0
        self._save(plan_id, st)
        return st.live

    def rollback(self, plan_id: str) -> str:
        """Drop the canary if there is one; otherwise go back to the previous live version."""
        st = self.state(plan_id)
        if st.canary is not None:
            st.canary, st.canary_percent = None, 0
        elif st.history:
            st.live = st.history.pop()
        else:
            raise VersionError(f"{plan_id} has nothing to roll back to")
        self._save(plan_id, st)
        assert st.live is not None
        return st.live

    def resolve(self, plan_id: str, call_id: str) -> Path | None:
        """The file a new call should run: the canary for its share of calls (stable per call id)."""
        st = self.state(plan_id)
        if st.live is None:
            return None
        bucket = int(hashlib.sha256(call_id.encode()).hexdigest()[:8], 16) % 100
        ref = st.canary if st.canary and bucket < st.canary_percent else st.live
        return self.root / plan_id / f"{ref}.yaml"
