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
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_seq):06d}-{record.call_id}.json"
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(record.model_dump_json().encode())
            fh.flush()
            os.fsync(fh.fileno())
        path = self.dir / name
        os.replace(tmp, path)
        return path

    def pending(self) -> list[Path]:
        """Spooled records, oldest first."""
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob("*.json") if not p.name.startswith("."))

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
