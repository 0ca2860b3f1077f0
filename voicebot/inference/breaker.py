"""A circuit breaker per provider that every call worker of a node shares (a file per provider).

Call workers are separate processes, each living for one call: a breaker in memory would relearn a
dead provider on every call, paying its timeout each time. Here the first worker that sees a provider
fail opens the circuit for all of them, by writing the time until which it stays open to
``<dir>/<provider>``; after that, one request is let through (half-open) and its outcome closes or
re-opens the circuit. Plain files: atomic rename, no locks, nothing to start.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

OPEN_S = 5.0  # how long a failed provider is skipped before one request tries it again
MAX_OPEN_S = 60.0  # after repeated failures


class SharedBreaker:
    def __init__(
        self,
        directory: Path | None,
        name: str,
        clock: Callable[[], float] = time.time,
        open_s: float = OPEN_S,
    ) -> None:
        self.name = name
        self.clock = clock
        self.open_s = open_s
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:100]
        self.path = directory / safe if directory is not None else None
        self._local: tuple[float, int] = (0.0, 0)  # without a directory: this process only

    def _read(self) -> tuple[float, int]:
        if self.path is None:
            return self._local
        try:
            until, failures = self.path.read_text().split()
            return float(until), int(failures)
        except (OSError, ValueError):
            return 0.0, 0

    def _write(self, until: float, failures: int) -> None:
        if self.path is None:
            self._local = (until, failures)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".breaker-")
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{until} {failures}")
        os.replace(tmp, self.path)

    def allow(self) -> bool:
        """True when closed, or open long enough that one request may try (it re-arms the wait, so
        the other workers keep skipping the provider while that one request is out)."""
        until, failures = self._read()
        now = self.clock()
        if failures == 0 or now >= until:
            if failures:
                self._write(now + self.open_s, failures)  # half-open: this request is the probe
            return True
        return False

    def is_open(self) -> bool:
        until, failures = self._read()
        return failures > 0 and self.clock() < until

    def failure(self) -> None:
        _, failures = self._read()
        failures += 1
        self._write(self.clock() + min(MAX_OPEN_S, self.open_s * 2 ** (failures - 1)), failures)

    def success(self) -> None:
        if self._read()[1]:
            if self.path is None:
                self._local = (0.0, 0)
            else:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
