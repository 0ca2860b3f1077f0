"""Shared fixtures: a real voicebot server and a real LLM server on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pg_server import PostgresServer
from support.llm_server import LlamaServer
from support.net import free_port, free_port_block
from support.server import VoicebotServer, server_env


@pytest.fixture
def voicebot(tmp_path: Path) -> Iterator[Callable[..., VoicebotServer]]:
    """Factory: voicebot(**env) starts `voicebot run` with VOICEBOT_* overrides; stopped at teardown."""
    servers: list[VoicebotServer] = []

    def start(wait: bool = True, **extra: str) -> VoicebotServer:
        port = int(extra.pop("port", 0)) or free_port()
        rtp = free_port_block(200)
        server = VoicebotServer(tmp_path, port, server_env(tmp_path, port, rtp, **extra))
        servers.append(server)
        return server.start(wait=wait)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the session (started by the test setup, never skipped)."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (http://127.0.0.1:PORT/v1) of a real llama-server with SmolLM2-135M, one per session.

    Greedy sampling with a fixed seed, 2 threads, 2048-token context; its log is in the session's tmp dir.
    """
    server = LlamaServer(tmp_path_factory.mktemp("llm")).start()
    yield server.base_url
    server.stop()
