"""Tables: calls, their events, the durable post-call job queue, published dialplan versions, the UA
workers of every node that the edge dispatches to, and the admin console's users, sessions and audit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints: Alembic can drop/alter them by name on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# SQLite autoincrements only INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON}


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # voicebot call id (uuid hex)
    sip_call_id: Mapped[str] = mapped_column(String(255), index=True)
    trunk: Mapped[str] = mapped_column(String(64))
    caller: Mapped[str] = mapped_column(String(128), default="")  # PII: redactable
    callee: Mapped[str] = mapped_column(String(128), default="")
    dialplan: Mapped[str] = mapped_column(String(255), default="")
    ua_worker: Mapped[int] = mapped_column(Integer, default=0)
    node: Mapped[str] = mapped_column(String(64), default="")  # the voicebot node that took the call
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disposition: Mapped[str | None] = mapped_column(String(32))  # transferred, hung_up, failed, ...
    transfer_queue: Mapped[str | None] = mapped_column(String(64))
    end_reason: Mapped[str | None] = mapped_column(Text)
    dialplan_version: Mapped[str] = mapped_column(String(64), default="")  # <version>-<hash>
    outcome: Mapped[str] = mapped_column(String(16), default="", index=True)  # completed, escalated, ...
    failure_class: Mapped[str] = mapped_column(String(32), default="", index=True)  # records/classify.py

    events: Mapped[list[CallEvent]] = relationship(back_populates="call", order_by="CallEvent.id")


class CallEvent(Base):
    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    call: Mapped[Call] = relationship(back_populates="events")


class Job(Base):
    """Post-call work (summaries, CRM updates): never in the live path, retried with back-off."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_run_after", "status", "run_after"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    # What makes two enqueues the same job (e.g. "webhook:crm:<call id>"): the second is ignored.
    key: Mapped[str | None] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued, running, done, failed (dead)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class DialplanVersion(Base):
    """A published dialplan version: its files (plan.yaml and the subflows it uses), never changed."""

    __tablename__ = "dialplan_versions"
    __table_args__ = (UniqueConstraint("plan_id", "ref", name="uq_dialplan_versions_plan_id_ref"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(String(128))
    ref: Mapped[str] = mapped_column(String(128))  # <version>-<content hash>
    files: Mapped[dict[str, Any]] = mapped_column(default=dict)  # relative path -> text
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DialplanState(Base):
    """Which version of a dialplan is live, the canary and its share, the history to roll back to.
    ``revision`` grows with every change: nodes compare it with their copy every few seconds."""

    __tablename__ = "dialplan_states"

    plan_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    live: Mapped[str | None] = mapped_column(String(128))
    canary: Mapped[str | None] = mapped_column(String(128))
    canary_percent: Mapped[int] = mapped_column(Integer, default=0)
    history: Mapped[list[str]] = mapped_column(JSON, default=list)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class SipBackend(Base):
    """A UA worker of a node, announced for the edge (``voicebot edge``) to dispatch calls to.

    The node rewrites its rows every ``cluster.beat_s`` and adds one to ``beat``; the edge judges
    freshness by seeing ``beat`` change on its own clock (no clock is compared across hosts). A node
    that drains sets ``state`` to draining; one that stops removes its rows; one that dies leaves
    them to go stale."""

    __tablename__ = "sip_backends"

    uri: Mapped[str] = mapped_column(String(255), primary_key=True)  # sip:HOST:PORT
    node: Mapped[str] = mapped_column(String(64), index=True)
    ua_index: Mapped[int] = mapped_column(Integer, default=0)
    max_calls: Mapped[int] = mapped_column(Integer, default=4)
    free_slots: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="starting")  # starting, ready, draining
    beat: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ConsoleUser(Base):
    """A person who may log in to the admin console (voicebot/console); added by `voicebot console user`."""

    __tablename__ = "console_users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))  # scrypt, salted (voicebot/console/auth.py)
    role: Mapped[str] = mapped_column(String(16))  # viewer, analyst, admin
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConsoleSession(Base):
    """A logged-in browser. The cookie holds a random token; only its SHA-256 is stored here, so a copy
    of the database cannot be used to log in."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(ForeignKey("console_users.name", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))  # the token every form of this session must carry
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """What was done in the console (and to its users), by whom, from where; never deleted by voicebot."""

    __tablename__ = "console_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    user: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # login, login_failed, logout, promote, rollback, ...
    target: Mapped[str] = mapped_column(String(255), default="")
    ok: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(64), default="")  # client address, or "cli"
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
