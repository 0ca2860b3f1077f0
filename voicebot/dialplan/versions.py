"""Dialplan versions: publish (checked first), canary a share of new calls, promote, roll back.

A store is a directory. ``<root>/<plan id>/<version>-<hash>/plan.yaml`` holds every published
content (immutable; the subflow files it uses are copied beside it at the same relative paths, so a
published version never changes when a shared subflow is edited later). ``<root>/<plan id>/state.json``
says which is live, which is the canary and for what percentage of new calls, and the history to roll
back to. A broken file is never published: the live version stays. A call keeps the version it
started with (it holds the parsed plan).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.dialplan.check import check_plan
from voicebot.dialplan.plan import PLAN_ID, Plan, parse
from voicebot.dialplan.yamlsafe import Diagnostic, YamlError
from voicebot.errors import VoicebotError

PLAN_FILE = "plan.yaml"  # the published dialplan inside its version folder
KEEP_LAST_GOOD = 5  # last good versions of a routed file kept on disk


class VersionError(VoicebotError):
    """A publish/promote/rollback that cannot happen; the message says why."""


def folder_name(name: str) -> str:
    """``name`` when it may be a folder of the store (a plan id or a version ref); never a path that
    leaves it, whoever supplied the name (a browser's URL, another node's shared state)."""
    if not PLAN_ID.fullmatch(name):
        raise VersionError(f"{name[:80]!r} is not a dialplan id or version")
    return name


@dataclass
class StoreState:
    live: str | None = None
    canary: str | None = None
    canary_percent: int = 0
    history: list[str] = field(default_factory=list)  # previous live refs, newest last
    revision: int = 0  # the shared state's revision this copy came from (voicebot/dialplan/shared.py)

    def refs(self) -> list[str]:
        """Every version this state can send a call to or roll back to."""
        return [r for r in dict.fromkeys([self.live, self.canary, *self.history]) if r]

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1)


class VersionStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, plan_id: str, ref: str = "") -> Path:
        folder = self.root / folder_name(plan_id)
        return folder / folder_name(ref) if ref else folder

    def state(self, plan_id: str) -> StoreState:
        path = self._dir(plan_id) / "state.json"
        if not path.is_file():
            return StoreState()
        data: dict[str, Any] = json.loads(path.read_text())
        return StoreState(**data)

    def plans(self) -> list[str]:
        names = (p.parent.name for p in self.root.glob("*/state.json"))
        return sorted(n for n in names if PLAN_ID.fullmatch(n))  # a folder made by hand is not a plan

    def version_files(self, plan_id: str, ref: str) -> dict[str, str]:
        """A published version's files (plan.yaml and its subflows) by relative path."""
        folder = self._dir(plan_id, ref)
        if not (folder / PLAN_FILE).is_file():
            raise VersionError(f"{plan_id} {ref} is not in {self.root}")
        return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}

    def has_version(self, plan_id: str, ref: str) -> bool:
        return (self._dir(plan_id, ref) / PLAN_FILE).is_file()

    def write_version(self, plan_id: str, ref: str, files: dict[str, str]) -> None:
        """Store a version published elsewhere (all or nothing; paths must stay inside its folder)."""
        target = self._dir(plan_id, ref)
        if target.is_dir():
            return
        if PLAN_FILE not in files:
            raise VersionError(f"{plan_id} {ref} has no {PLAN_FILE}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".publish-"))
        for rel, text in files.items():
            path = (tmp / rel).resolve()
            if not path.is_relative_to(tmp.resolve()):
                shutil.rmtree(tmp, ignore_errors=True)
                raise VersionError(f"{plan_id} {ref}: file {rel!r} would land outside its version folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        os.replace(tmp, target)

    def save_state(self, plan_id: str, state: StoreState) -> None:
        self._save(plan_id, state)

    def _save(self, plan_id: str, state: StoreState) -> None:
        folder = self._dir(plan_id)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder)
        with os.fdopen(fd, "w") as fh:
            fh.write(state.to_json())
        os.replace(tmp, folder / "state.json")  # atomic: workers never read half a state

    def publish(
        self,
        source: Path,
        canary_percent: int | None = None,
        known_queues: list[str] | None = None,
        allowed_bases: list[str] | None = None,
    ) -> tuple[Plan, str]:
        """Check ``source``; store it; make it live, or the canary for ``canary_percent`` % of calls."""
        raw = source.read_bytes()
        try:
            plan = parse(raw, str(source))
        except YamlError as exc:
            raise VersionError(f"not published, {source} has errors:\n{exc}") from None
        errors = [d for d in check_plan(plan, known_queues, allowed_bases) if d.severity == "error"]
        if errors:
            raise VersionError("not published, the checker found:\n" + "\n".join(map(str, errors)))
        # The hash covers the subflows too: editing a shared subflow makes a new version.
        ref = f"{plan.version}-{plan.content_hash[:12]}"
        self._store(source, raw, plan, self._dir(plan.id, ref))
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

    @staticmethod
    def _store(source: Path, raw: bytes, plan: Plan, target: Path) -> None:
        """Write the plan and its subflows into ``target`` (all or nothing: a rename at the end)."""
        if target.is_dir():
            return
        base = source.resolve().parent
        files: dict[Path, bytes] = {Path(PLAN_FILE): raw}
        for include in plan.includes:
            path = Path(include).resolve()
            if not path.is_relative_to(base):
                raise VersionError(
                    f"not published: subflow {include} is outside {base} (keep subflows in the "
                    "dialplan's folder or below, so a published version can carry them)"
                )
            files[path.relative_to(base)] = path.read_bytes()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".publish-"))
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        os.replace(tmp, target)

    def promote(self, plan_id: str) -> str:
        st = self.state(plan_id)
        if st.canary is None:
            raise VersionError(f"{plan_id} has no canary to promote")
        if st.live:
            st.history.append(st.live)
        st.live, st.canary, st.canary_percent = st.canary, None, 0
        self._save(plan_id, st)
        return st.live

    def set_canary_share(self, plan_id: str, percent: int) -> str:
        """Send ``percent`` % of new calls to the canary (it must exist); returns the canary's ref."""
        st = self.state(plan_id)
        if st.canary is None:
            raise VersionError(f"{plan_id} has no canary (publish one as a canary first)")
        if not 0 < percent <= 100:
            raise VersionError("canary percentage must be 1..100")
        st.canary_percent = percent
        self._save(plan_id, st)
        return st.canary

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
        return self._dir(plan_id, ref) / PLAN_FILE


class PlanFile:
    """A routed dialplan file, re-read and validated before it replaces the last good plan.

    ``reload()`` switches to the file's content only when it parses and checks clean (subflows
    included); otherwise the last good plan stays and the diagnostics come back for the log. With
    ``keep`` (a folder), the last good plan is also kept on disk, frozen with its subflows, so a
    new process (each call's worker is one) still serves it when the file was broken before it
    started. Calls hold the Plan they started with: a reload never changes a call in progress."""

    def __init__(
        self,
        path: Path,
        known_queues: list[str] | None = None,
        allowed_bases: list[str] | None = None,
        keep: Path | None = None,
    ) -> None:
        self.path, self.known_queues, self.allowed_bases = path, known_queues, allowed_bases
        self.keep = keep
        self._plan: Plan | None = None

    @property
    def plan(self) -> Plan:
        """The last good plan (loads the file on first use; VersionError when it never was good)."""
        if self._plan is None:
            problems = self.reload()
            if self._plan is None:
                raise VersionError(f"{self.path} has no good version yet:\n" + "\n".join(map(str, problems)))
        return self._plan

    def reload(self) -> list[Diagnostic]:
        """Re-read the file; switch to it only when it is clean of errors. Returns what was wrong."""
        try:
            raw = self.path.read_bytes()
            plan = parse(raw, str(self.path))
        except OSError as exc:
            problems = [Diagnostic(str(self.path), 1, 1, "error", f"cannot read: {exc.strerror}")]
        except YamlError as exc:
            problems = exc.diagnostics
        else:
            checked = check_plan(plan, self.known_queues, self.allowed_bases)
            problems = [d for d in checked if d.severity == "error"]
            if not problems:
                if self._plan is None or plan.content_hash != self._plan.content_hash:
                    self._plan = plan
                    self._remember(raw, plan)
                return []
        if self._plan is None:
            self._plan = self._remembered()
        return problems

    def _remember(self, raw: bytes, plan: Plan) -> None:
        if self.keep is None:
            return
        try:
            VersionStore._store(self.path, raw, plan, self.keep / plan.content_hash)
            fd, tmp = tempfile.mkstemp(dir=self.keep)
            with os.fdopen(fd, "w") as fh:
                fh.write(plan.content_hash)
            os.replace(tmp, self.keep / "current")
            old = sorted((d for d in self.keep.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime)
            for folder in old[:-KEEP_LAST_GOOD]:
                shutil.rmtree(folder, ignore_errors=True)
        except (OSError, VersionError):
            pass  # remembering is best effort: this process serves the plan all the same

    def _remembered(self) -> Plan | None:
        if self.keep is None:
            return None
        try:
            ref = (self.keep / "current").read_text().strip()
            stored = self.keep / ref / PLAN_FILE
            return parse(stored.read_bytes(), str(stored))
        except (OSError, YamlError):
            return None
