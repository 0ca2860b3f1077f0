"""`voicebot db upgrade|current` for the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path


def _url(args: argparse.Namespace) -> str:
    """--url, else database.url of the settings (--config or VOICEBOT_CONFIG, VOICEBOT_DATABASE__URL)."""
    if args.url:
        return str(args.url)
    from voicebot.config import load_settings

    return load_settings(args.config).database.url


def _upgrade(args: argparse.Namespace) -> int:
    from voicebot.db.migrate import upgrade

    url = _url(args)
    upgrade(url)
    print(f"database at {url.split('@')[-1]} is at the newest revision")
    return 0


def _current(args: argparse.Namespace) -> int:
    from alembic import command

    from voicebot.db.migrate import alembic_config

    command.current(alembic_config(_url(args)))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="database migrations")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    for name, func, text in (
        ("upgrade", _upgrade, "apply all migrations"),
        ("current", _current, "show the applied revision"),
    ):
        p = dbsub.add_parser(name, help=text)
        p.add_argument("--url", default=None, help="SQLAlchemy URL (default: the database.url setting)")
        p.add_argument(
            "--config", type=Path, default=None, help="voicebot settings file (default: VOICEBOT_CONFIG)"
        )
        p.set_defaults(func=func)
