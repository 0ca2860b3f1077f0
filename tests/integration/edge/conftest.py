"""Fixtures for the Kamailio edge: real sipp UAS backends, a real Kamailio, sipp UACs as callers.

Every process started here is killed in teardown (SIGTERM, then SIGKILL after a bounded wait).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from edge_peers import EdgeFactory, SippUas, Uac, edge_params, free_port, require_tools

from voicebot.edge.runner import KamailioEdge


@pytest.fixture
def short_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short run_dir: the ctl socket path must fit in a UNIX socket address."""
    return tmp_path_factory.mktemp("edge")


@pytest_asyncio.fixture
async def backends(short_tmp: Path) -> AsyncIterator[list[SippUas]]:
    """Three running sipp UAS processes on free ports."""
    require_tools()
    uas = [SippUas(short_tmp, free_port()) for _ in range(3)]
    try:
        for u in uas:
            await u.start()
        yield uas
    finally:
        for u in uas:
            await u.stop()


@pytest_asyncio.fixture
async def start_edge(short_tmp: Path, backends: list[SippUas]) -> AsyncIterator[EdgeFactory]:
    """Factory: ``await start_edge(**overrides)`` starts a KamailioEdge; all are stopped at teardown."""
    edges: list[KamailioEdge] = []

    async def start(activate: bool = True, **overrides: Any) -> KamailioEdge:
        port = overrides.pop("port", 0) or free_port()
        edge = KamailioEdge(edge_params(short_tmp / f"kam{len(edges)}", port, backends, **overrides))
        edges.append(edge)
        await edge.start()
        # Backends start inactive; the supervisor activates each UA worker when it says it is ready.
        # The sipp backends are ready from the start: do what the supervisor does.
        for i in range(len(edge.params.backends) if activate else 0):
            await edge.set_backend(i, True)
        return edge

    try:
        yield start
    finally:
        for edge in edges:
            await edge.stop(timeout=3.0)


@pytest_asyncio.fixture
async def edge(start_edge: EdgeFactory) -> KamailioEdge:
    """A running edge with the default test params in front of the three backends."""
    return await start_edge()


@pytest_asyncio.fixture
async def uac(short_tmp: Path, edge: KamailioEdge) -> AsyncIterator[Uac]:
    """sipp caller(s) aimed at the default edge."""
    caller = Uac(short_tmp, edge.params.port)
    try:
        yield caller
    finally:
        await caller.close()
