"""Shared fixtures: a real voicebot server on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
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
