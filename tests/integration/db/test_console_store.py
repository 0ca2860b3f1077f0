"""Console users, sessions and the audit log on real SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from voicebot.console import auth, store
from voicebot.db.engine import sessionmaker
from voicebot.db.models import ConsoleSession, ConsoleUser


async def test_users_sessions_and_audit(engine: AsyncEngine) -> None:
    db = sessionmaker(engine)
    async with db() as s, s.begin():
        await store.add_user(s, "alice", "alice-secret-1", "admin")
        await store.add_user(s, "bob", "bob-secret-22", "viewer")
    async with db() as s, s.begin():
        with pytest.raises(store.UserError, match="exists"):
            await store.add_user(s, "alice", "another-secret", "viewer")
        with pytest.raises(store.UserError, match="role"):
            await store.add_user(s, "carol", "carol-secret-1", "root")
        with pytest.raises(ValueError, match="at least"):
            await store.add_user(s, "carol", "short", "viewer")
        # the password is stored salted and hashed, never as given
        stored = (await s.get(ConsoleUser, "alice")).password_hash  # type: ignore[union-attr]
        assert "alice-secret-1" not in stored and stored.startswith("scrypt$")
    async with db() as s, s.begin():
        assert await store.authenticate(s, "alice", "wrong-password") is None
        assert await store.authenticate(s, "nobody", "alice-secret-1") is None
        user = await store.authenticate(s, "alice", "alice-secret-1")
        assert user is not None and user.role == "admin"
        token, csrf = await store.open_session(s, "alice")
    async with db() as s, s.begin():
        # only the token's hash is in the database
        assert (await s.scalars(select(ConsoleSession.token_hash))).all() != [token]
        who = await store.find_session(s, token, idle_s=600, max_s=3600)
        assert who == store.LoggedIn("alice", "admin", csrf)
        assert await store.find_session(s, token + "x", 600, 3600) is None
    async with db() as s, s.begin():  # an idle session ends, and is deleted when found so
        row = (await s.scalars(select(ConsoleSession))).one()
        row.seen_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=700)
    async with db() as s, s.begin():
        assert await store.find_session(s, token, idle_s=600, max_s=3600) is None
    async with db() as s, s.begin():
        assert (await s.scalars(select(ConsoleSession))).all() == []
        token, _ = await store.open_session(s, "bob")
    async with db() as s, s.begin():  # a new role ends the user's sessions
        await store.change_user(s, "bob", role="analyst")
    async with db() as s, s.begin():
        assert await store.find_session(s, token, 600, 3600) is None
        await store.audit(s, "alice", "rollback", "example", source="127.0.0.1", detail={"live": "1-abc"})
        await store.audit(s, "bob", "rollback", "example", ok=False, source="127.0.0.1")
        await store.remove_user(s, "bob")
    async with db() as s:
        entries = await store.audit_entries(s)
        assert [(e.user, e.action, e.ok) for e in entries] == [
            ("bob", "rollback", False),
            ("alice", "rollback", True),
        ]
        assert entries[1].detail == {"live": "1-abc"}
        assert [u.name for u in await store.users(s)] == ["alice"]


async def test_a_login_purges_sessions_that_have_ended(engine: AsyncEngine) -> None:
    db = sessionmaker(engine)
    now = dt.datetime.now(dt.UTC)
    async with db() as s, s.begin():
        await store.add_user(s, "alice", "alice-secret-1", "admin")
    async with db() as s, s.begin():
        idle, old, live = [(await store.open_session(s, "alice"))[0] for _ in range(3)]
    async with db() as s, s.begin():
        rows = {r.token_hash: r for r in (await s.scalars(select(ConsoleSession))).all()}
        rows[auth.token_hash(idle)].seen_at = now - dt.timedelta(seconds=700)  # unused too long
        rows[auth.token_hash(old)].created_at = now - dt.timedelta(seconds=4000)  # logged in too long ago
    async with db() as s, s.begin():
        assert await store.purge_sessions(s, idle_s=600, max_s=3600) == 2
    async with db() as s:
        assert (await s.scalars(select(ConsoleSession.token_hash))).all() == [auth.token_hash(live)]
        assert await store.find_session(s, live, 600, 3600) is not None
