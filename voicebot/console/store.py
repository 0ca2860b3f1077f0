"""Console users, sessions and the audit log in the database (SQLite or PostgreSQL, like the calls)."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.console import auth
from voicebot.db.models import AuditEntry, ConsoleSession, ConsoleUser
from voicebot.errors import VoicebotError

SEEN_EVERY_S = 30.0  # a session's last use is written at most this often (one UPDATE per page is waste)


class UserError(VoicebotError):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)  # SQLite gives naive UTC back


@dataclass(frozen=True)
class LoggedIn:
    user: str
    role: str
    csrf: str


async def add_user(session: AsyncSession, name: str, password: str, role: str) -> None:
    if role not in auth.ROLES:
        raise UserError(f"role must be one of {', '.join(auth.ROLES)}")
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UserError("a user name is 1-64 letters, digits, '.', '-' or '_'")
    auth.check_new_password(password, name)
    if await session.get(ConsoleUser, name) is not None:
        raise UserError(f"user {name} exists (set its password or role instead)")
    session.add(ConsoleUser(name=name, password_hash=await _hash(password), role=role, disabled=False))


async def _hash(password: str) -> str:
    return await asyncio.to_thread(auth.hash_password, password)


async def change_user(
    session: AsyncSession, name: str, password: str | None = None, role: str | None = None
) -> None:
    user = await session.get(ConsoleUser, name)
    if user is None:
        raise UserError(f"no console user {name}")
    if role is not None:
        if role not in auth.ROLES:
            raise UserError(f"role must be one of {', '.join(auth.ROLES)}")
        user.role = role
    if password is not None:
        auth.check_new_password(password, name)
        user.password_hash = await _hash(password)
    # a new password or role ends every session the user has open
    await session.execute(delete(ConsoleSession).where(ConsoleSession.user == name))


async def remove_user(session: AsyncSession, name: str) -> None:
    user = await session.get(ConsoleUser, name)
    if user is None:
        raise UserError(f"no console user {name}")
    await session.execute(delete(ConsoleSession).where(ConsoleSession.user == name))
    await session.delete(user)


async def users(session: AsyncSession) -> list[ConsoleUser]:
    return list((await session.scalars(select(ConsoleUser).order_by(ConsoleUser.name))).all())


async def authenticate(session: AsyncSession, name: str, password: str) -> ConsoleUser | None:
    user = await session.get(ConsoleUser, name) if name else None
    stored = user.password_hash if user is not None and not user.disabled else auth.DUMMY_HASH
    ok = await asyncio.to_thread(auth.verify_password, password, stored)
    return user if ok and user is not None and not user.disabled else None


async def open_session(session: AsyncSession, user: str) -> tuple[str, str]:
    """A new session for ``user``: (the cookie's token, the session's CSRF token)."""
    token, csrf, now = auth.new_token(), auth.new_token(), _now()
    session.add(
        ConsoleSession(token_hash=auth.token_hash(token), user=user, csrf=csrf, created_at=now, seen_at=now)
    )
    return token, csrf


async def find_session(session: AsyncSession, token: str, idle_s: float, max_s: float) -> LoggedIn | None:
    """The logged-in user of ``token`` (None when unknown, expired or the user is gone or disabled)."""
    row = await session.get(ConsoleSession, auth.token_hash(token))
    if row is None:
        return None
    now = _now()
    created, seen = _aware(row.created_at), _aware(row.seen_at)
    user = await session.get(ConsoleUser, row.user)
    alive = auth.session_alive(created.timestamp(), seen.timestamp(), now.timestamp(), idle_s, max_s)
    if not alive or user is None or user.disabled:
        await session.delete(row)
        return None
    if (now - seen).total_seconds() > SEEN_EVERY_S:
        row.seen_at = now
    return LoggedIn(user.name, user.role, row.csrf)


async def close_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == auth.token_hash(token)))


async def purge_sessions(session: AsyncSession, idle_s: float, max_s: float) -> int:
    """Delete every session that has ended (unused for ``idle_s`` or older than ``max_s``); a login
    does this, so sessions never found again do not pile up. Returns how many went."""
    now = _now()
    ended = or_(
        ConsoleSession.seen_at < now - dt.timedelta(seconds=idle_s),
        ConsoleSession.created_at < now - dt.timedelta(seconds=max_s),
    )
    res = await session.execute(delete(ConsoleSession).where(ended))
    return int(getattr(res, "rowcount", 0) or 0)


async def audit(
    session: AsyncSession,
    user: str,
    action: str,
    target: str = "",
    ok: bool = True,
    source: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            at=_now(),
            user=user[:64],
            action=action,
            target=target[:255],
            ok=ok,
            source=source[:64],
            detail=detail or {},
        )
    )


async def audit_entries(session: AsyncSession, limit: int = 200) -> list[AuditEntry]:
    q = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    return list((await session.scalars(q)).all())
