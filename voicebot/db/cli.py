"""`voicebot db upgrade|current` for the CLI."""

from __future__ import annotations

import argparse

from voicebot.db.engine import DEFAULT_URL


def _upgrade(args: argparse.Namespace) -> int:
    from voicebot.db.migrate import upgrade

    upgrade(args.url)
    print(f"database at {args.url.split('@')[-1]} is at the newest revision")
    return 0


def _current(args: argparse.Namespace) -> int:
    from alembic import command

    from voicebot.db.migrate import alembic_config

    command.current(alembic_config(args.url))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="database migrations")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    for name, func, text in (
        ("upgrade", _upgrade, "apply all migrations"),
        ("current", _current, "show the applied revision"),
    ):
        p = dbsub.add_parser(name, help=text)
        p.add_argument("--url", default=DEFAULT_URL, help=f"SQLAlchemy URL (default {DEFAULT_URL})")
        p.set_defaults(func=func)
