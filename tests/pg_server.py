"""A real, throw-away PostgreSQL server for tests (Debian's postgresql package).

PostgreSQL refuses to run as root, so as root every command runs as the `postgres` user in a
directory that user owns. Failing to start is an error, never a skip: CI must exercise PostgreSQL.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from support.net import free_port


class PostgresServer:
    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise RuntimeError(
                "PostgreSQL server binaries not found: run `make install` (apt package postgresql)"
            )
        self.bindir = Path(bins[-1]).parent
        self.base = Path(tempfile.mkdtemp(prefix="voicebot-pg-"))
        self.port = free_port()
        self.data = self.base / "data"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        return subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresServer:
        os.chmod(self.base, 0o755)
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        return self.resume()

    def resume(self) -> PostgresServer:
        """Start the server on its existing data (after start() or halt())."""
        opts = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.base / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def shell_command(self, action: str) -> str:
        """``halt`` or ``resume`` as one shell command line (for `voicebot loadtest --at`)."""
        import shlex

        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        ctl = [*prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data)]
        if action == "halt":
            return shlex.join([*ctl, "-m", "fast", "-w", "stop"])
        opts = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        )
        return shlex.join([*ctl, "-o", opts, "-l", str(self.base / "log"), "-w", "-t", "60", "start"])

    def halt(self) -> None:
        """Stop the server, keeping its data: a database outage (resume() ends it)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        self._run(
            str(self.bindir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            f'CREATE DATABASE "{name}"',
        )
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
