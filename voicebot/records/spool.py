"""Records the database could not take, kept on local disk until it can.

One JSON file per record, named so that sorting the names gives the order they were spooled in.
A file is written to a temporary name, synced and renamed, so a crash never leaves half a record
under a spool name; a file that cannot be read is moved to ``bad/`` with the reason logged, so it
never blocks the records behind it.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from pydantic import ValidationError

from voicebot.logs import get_logger
from voicebot.records.record import CallRecord

log = get_logger(__name__)
_seq = itertools.count()


class SpoolError(Exception):
    """A spooled file that is not a record."""


class Spool:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def put(self, record: CallRecord) -> Path:
        """Keep ``record`` (callers' numbers and words: readable by this user only)."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_seq):06d}-{record.call_id}.json"
        tmp = self.dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(record.model_dump_json().encode())
            fh.flush()
            os.fsync(fh.fileno())
        path = self.dir / name
        os.replace(tmp, path)
        return path

    def pending(self, min_age_s: float = 0.0) -> list[Path]:
        """Spooled records, oldest first; with ``min_age_s``, only those at least that old (a call
        worker spools its record before it asks the database, and removes it when that worked)."""
        if not self.dir.is_dir():
            return []
        paths = sorted(p for p in self.dir.glob("*.json") if not p.name.startswith("."))
        if min_age_s <= 0:
            return paths
        cutoff = time.time() - min_age_s
        aged = []
        for p in paths:
            try:
                if p.stat().st_mtime <= cutoff:
                    aged.append(p)
            except FileNotFoundError:  # written to the database and removed meanwhile
                continue
        return aged

    def load(self, path: Path) -> CallRecord:
        try:
            return CallRecord.model_validate_json(path.read_bytes())
        except (OSError, ValidationError, ValueError) as exc:
            raise SpoolError(f"{path.name}: {str(exc)[:300]}") from exc

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def quarantine(self, path: Path, why: str) -> None:
        bad = self.dir / "bad"
        bad.mkdir(exist_ok=True)
        os.replace(path, bad / path.name)
        log.error("records.spool_bad_file", file=path.name, why=why, moved_to=str(bad))
