"""Database fixtures: every test runs against real SQLite and a real PostgreSQL, migrated by Alembic."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from voicebot.db.engine import DatabaseParams, create_engine
from voicebot.db.migrate import upgrade

_counter = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A freshly migrated database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'voicebot.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"t{next(_counter)}")
    upgrade(url)
    return url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(DatabaseParams(url=db_url))
    yield eng
    await eng.dispose()
