"""`voicebot call NUMBER --dialplan FILE`: book an outbound call now or at a time; the running
`voicebot run` places it (its dialer), within calling hours, the trunk's limits and the destination
policy, and the call runs the dialplan from its start or ``--entry``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

from voicebot.errors import VoicebotError


def _variables(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise VoicebotError(f"--var takes NAME=VALUE, not {pair!r}")
        out[name] = value
    return out


def _when(text: str, after_s: float, cfg: Any) -> dt.datetime:
    from voicebot.outbound import schedule

    date, _, time = text.strip().rpartition(" ") if text else ("", "", "")
    at = schedule.when(dt.datetime.now(dt.UTC), cfg, date, time, after_s)
    if isinstance(at, schedule.TooLate):
        raise VoicebotError(f"cannot call at {text!r}: {at.reason}")
    return at


def _call(args: argparse.Namespace) -> int:
    from voicebot.config import load_settings
    from voicebot.dialplan.plan import parse
    from voicebot.dialplan.yamlsafe import YamlError
    from voicebot.logs import masked_number
    from voicebot.outbound import schedule
    from voicebot.outbound.book import BookingRefused, book
    from voicebot.supervisor.plan import absolute_sqlite

    settings = load_settings(args.config)
    path = Path(args.dialplan).resolve()
    try:
        plan = parse(path.read_bytes(), str(path))
    except OSError as exc:
        raise VoicebotError(f"cannot read {args.dialplan}: {exc.strerror}") from None
    except YamlError as exc:
        raise VoicebotError(f"{args.dialplan} is not a valid dialplan: {exc.diagnostics[0]}") from None
    if args.entry and args.entry not in plan.steps:
        raise VoicebotError(f"{args.dialplan} has no step {args.entry!r}")
    cfg = settings.outbound
    at = _when(args.at, args.after_s, cfg)
    trunks = [t.name for t in settings.trunks if t.dial]
    try:
        booking = asyncio.run(
            book(
                absolute_sqlite(settings.database.url),
                cfg,
                trunks,
                number=args.number,
                at=at,
                dialplan=str(path),
                entry=args.entry,
                variables=_variables(args.var),
                key=f"call:{uuid.uuid4().hex}",
                origin="cli",
                trunk=args.trunk,
            )
        )
    except BookingRefused as exc:
        raise VoicebotError(str(exc)) from None
    local = (booking.at if booking.at.tzinfo else booking.at.replace(tzinfo=dt.UTC)).astimezone(
        schedule.zone(cfg)
    )
    print(
        f"booked call job {booking.job_id}: {masked_number(booking.number)} through trunk {booking.trunk} "
        f"at {local:%Y-%m-%d %H:%M:%S %Z} ({plan.id}, {'step ' + args.entry if args.entry else 'its start'})"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "call",
        help="place an outbound call through a trunk (booked on the job queue; `voicebot run` dials it)",
    )
    p.add_argument("number", help="the number to call: E.164 (+12125550123) or national")
    p.add_argument("--dialplan", required=True, help="the dialplan the call runs")
    p.add_argument("--entry", default="", help="the step it starts at (default: the plan's start)")
    p.add_argument("--at", default="", help="local time HH:MM or 'YYYY-MM-DD HH:MM' (default: now)")
    p.add_argument("--in", dest="after_s", type=float, default=0.0, help="seconds from now (instead of --at)")
    p.add_argument("--trunk", default="", help="the trunk to call through (default: the first with `dial`)")
    p.add_argument("--var", action="append", default=[], help="NAME=VALUE for the call's variables")
    p.add_argument("--config", type=Path, default=None, help="YAML settings file (also VOICEBOT_CONFIG)")
    p.set_defaults(func=_call)
