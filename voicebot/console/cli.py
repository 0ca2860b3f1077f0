"""`voicebot console user add|set|remove|list` and `voicebot console audit`: the console's people,
managed on the node (never from the web), each change written to the audit log as done from "cli"."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _url(args: argparse.Namespace) -> str:
    from voicebot.config import load_settings
    from voicebot.db import migrate
    from voicebot.supervisor.plan import absolute_sqlite

    settings = load_settings(args.config)
    url = absolute_sqlite(args.url or settings.database.url)
    if settings.database.migrate_on_start:
        migrate.upgrade(url)
    return url


def _run(args: argparse.Namespace, work: Callable[[Any], Awaitable[T]]) -> T:
    from voicebot.db.engine import opened, sessionmaker

    url = _url(args)

    async def go() -> T:
        async with opened(url) as engine, sessionmaker(engine)() as session, session.begin():
            return await work(session)

    return asyncio.run(go())


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("the two passwords differ; nothing changed")
    return first


def _who() -> str:
    return f"cli:{os.environ.get('USER') or os.getuid()}"


def _user(args: argparse.Namespace) -> int:
    from voicebot.console import store

    cmd = args.user_command
    if cmd == "list":
        for u in _run(args, store.users):
            print(f"{u.name:<24} {u.role:<8} {'disabled' if u.disabled else ''}")
        return 0
    password = _password(args) if cmd == "add" or (cmd == "set" and args.password) else None

    async def work(session: Any) -> None:
        if cmd == "add":
            await store.add_user(session, args.name, password or "", args.role)
        elif cmd == "set":
            await store.change_user(session, args.name, password, args.role)
        else:
            await store.remove_user(session, args.name)
        detail = {"role": args.role} if getattr(args, "role", None) else {}
        if password is not None:
            detail["password"] = "changed"
        await store.audit(session, _who(), f"user_{cmd}", args.name, source="cli", detail=detail)

    try:
        _run(args, work)
    except (store.UserError, ValueError) as exc:
        print(f"voicebot console: {exc}", file=sys.stderr)
        return 2
    print(f"user {args.name}: {cmd} done")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from voicebot.console import store

    async def work(session: Any) -> list[Any]:
        return await store.audit_entries(session, args.limit)

    for e in _run(args, work):
        detail = " ".join(f"{k}={v}" for k, v in (e.detail or {}).items())
        print(
            f"{e.at:%Y-%m-%d %H:%M:%S} {e.user:<16} {e.action:<14} {e.target:<24} "
            f"{'ok' if e.ok else 'REFUSED'} {e.source} {detail}"
        )
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from voicebot.console.auth import ROLES

    console = sub.add_parser("console", help="the admin console's users and audit log")
    csub = console.add_subparsers(dest="console_command", required=True)
    users = csub.add_parser("user", help="add, change, remove or list console users")
    usub = users.add_subparsers(dest="user_command", required=True)
    p_add = usub.add_parser("add", help="add a user (asks for the password)")
    p_add.add_argument("name")
    p_add.add_argument(
        "--role",
        choices=ROLES,
        required=True,
        help="viewer reads; analyst also reads transcripts; admin also changes dialplan versions",
    )
    p_set = usub.add_parser("set", help="change a user's role or password (ends their sessions)")
    p_set.add_argument("name")
    p_set.add_argument("--role", choices=ROLES, default=None)
    p_set.add_argument("--password", action="store_true", help="ask for a new password")
    p_rm = usub.add_parser("remove", help="remove a user (ends their sessions)")
    p_rm.add_argument("name")
    p_list = usub.add_parser("list", help="the users and their roles")
    p_audit = csub.add_parser("audit", help="the newest audit log entries")
    p_audit.add_argument("--limit", type=int, default=50)
    for p in (p_add, p_set, p_rm, p_list, p_audit):
        p.add_argument("--url", default=None, help="SQLAlchemy URL (default: the database.url setting)")
        p.add_argument(
            "--config", type=Path, default=None, help="voicebot settings file (also VOICEBOT_CONFIG)"
        )
        p.set_defaults(func=_audit if p is p_audit else _user)
    for p in (p_add, p_set):
        p.add_argument(
            "--password-stdin", action="store_true", help="read the password from one line of stdin"
        )
