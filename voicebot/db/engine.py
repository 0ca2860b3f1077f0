"""Engines and sessions from an explicit DatabaseParams (no global settings inside)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

DEFAULT_URL = "sqlite+aiosqlite:///var/voicebot.db"


@dataclass(frozen=True)
class DatabaseParams:
    url: str = DEFAULT_URL
    echo: bool = False
    pool_size: int = 5


def create_engine(p: DatabaseParams) -> AsyncEngine:
    url = make_url(p.url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=p.echo)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, echo=p.echo, pool_size=p.pool_size, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
    # WAL lets readers run while a writer commits; busy_timeout waits instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[AsyncEngine]:
    """A one-connection engine for one piece of work (a record, a CLI command), disposed after."""
    engine = create_engine(DatabaseParams(url=url, pool_size=1))
    try:
        yield engine
    finally:
        await engine.dispose()
