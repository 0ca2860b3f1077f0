"""`voicebot calls list|show` and `voicebot report`: the calls in the database, on any node."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def since(text: str) -> dt.timedelta:
    """``--since``: ``90s``, ``15m``, ``24h``, ``7d``, ``2w`` (reports.query.span)."""
    from voicebot.reports.query import span

    try:
        return span(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _human(span: dt.timedelta) -> str:
    from voicebot.reports.query import UNITS

    total = int(span.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if total % UNITS[unit] == 0 and total >= UNITS[unit]:
            return f"the last {total // UNITS[unit]}{unit}"
    return f"the last {total}s"


def _settings(args: argparse.Namespace) -> Any:
    from voicebot.config import load_settings

    return load_settings(args.config)


def _session(args: argparse.Namespace, work: Callable[[Any], Awaitable[T]]) -> T:
    from voicebot.db.engine import opened, sessionmaker
    from voicebot.supervisor.plan import absolute_sqlite

    url = absolute_sqlite(args.url or _settings(args).database.url)

    async def go() -> T:
        async with opened(url) as engine, sessionmaker(engine)() as session, session.begin():
            return await work(session)

    return asyncio.run(go())


def _list(args: argparse.Namespace) -> int:
    from voicebot.reports import calls, query

    async def work(session: Any) -> list[Any]:
        return await query.calls(
            session,
            since=args.since,
            dialplan=args.dialplan,
            outcome=args.outcome,
            failure_class=args.failure_class,
            limit=args.limit,
        )

    rows = _session(args, work)
    if args.json:
        print(json.dumps([query.call_doc(c) for c in rows], indent=1, default=str))
    else:
        print(calls.render_list(rows))
    return 0


def _show(args: argparse.Namespace) -> int:
    from voicebot.reports import calls, query

    async def work(session: Any) -> tuple[Any, list[Any]]:
        return await query.call_with_events(session, args.id)

    from voicebot.reports.costs import call_cost

    call, events = _session(args, work)
    prices = _settings(args).costs
    cost = call_cost(
        call.trunk, calls.seconds_of(call), [{"kind": e.kind, **(e.data or {})} for e in events], prices
    )
    if args.json:
        doc = query.call_doc(call) | {
            "cost": cost | {"currency": prices.currency},
            "events": [query.event_doc(e, args.transcript, call.started_at) for e in events],
        }
        print(json.dumps(doc, indent=1, default=str))
    else:
        print(calls.render_call(call, events, transcript=args.transcript))
        if cost["total"]:
            parts = ", ".join(f"{k} {v:.4f}" for k, v in cost.items() if v and k != "total")
            print(f"\ncost {cost['total']:.4f} {prices.currency} ({parts})")
    return 0


def _report(args: argparse.Namespace) -> int:
    from voicebot.reports import query, summary

    prices = _settings(args).costs

    async def work(session: Any) -> list[summary.CallRow]:
        return await query.report_rows(session, since=args.since, dialplan=args.dialplan, prices=prices)

    report = summary.summarise(_session(args, work))
    if args.json:
        extra = {"since_s": args.since.total_seconds(), "currency": prices.currency}
        print(json.dumps(report | extra, indent=1))
    else:
        print(summary.render(report, _human(args.since), prices.currency))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from voicebot.records.classify import CLASSES, OUTCOMES

    calls = sub.add_parser("calls", help="the calls in the database: list them, show one")
    csub = calls.add_subparsers(dest="calls_command", required=True)
    p_list = csub.add_parser("list", help="the newest calls, with their outcome and failure class")
    p_list.add_argument("--since", type=since, default=None, help="e.g. 15m, 24h, 7d (default: all)")
    p_list.add_argument("--dialplan", default=None, help="the dialplan's file name or path (its end)")
    p_list.add_argument("--outcome", choices=OUTCOMES, default=None)
    p_list.add_argument("--failure-class", choices=CLASSES, default=None)
    p_list.add_argument("--limit", type=int, default=50)
    p_show = csub.add_parser("show", help="one call: its record, events and per-turn waterfall")
    p_show.add_argument("id", help="the call id, or the start of it (as `calls list` shows it)")
    p_show.add_argument(
        "--transcript", action="store_true", help="show what the caller said (hidden by default)"
    )
    p_report = sub.add_parser(
        "report", help="calls, completion, escalation, failure classes and turn latency per dialplan version"
    )
    p_report.add_argument("--since", type=since, default=since("24h"), help="e.g. 1h, 24h (default), 7d")
    p_report.add_argument("--dialplan", default=None, help="only this dialplan (file name or path end)")
    for p, func in ((p_list, _list), (p_show, _show), (p_report, _report)):
        p.add_argument("--json", action="store_true", help="JSON instead of text")
        p.add_argument("--url", default=None, help="SQLAlchemy URL (default: the database.url setting)")
        p.add_argument(
            "--config", type=Path, default=None, help="voicebot settings file (also VOICEBOT_CONFIG)"
        )
        p.set_defaults(func=func)
