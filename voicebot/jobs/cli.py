"""`voicebot jobs run|list|show|retry`: work the post-call queue from any node, and look into it."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _settings(args: argparse.Namespace) -> Any:
    from voicebot.config import load_settings

    return load_settings(args.config)


def _url(args: argparse.Namespace) -> str:
    from voicebot.supervisor.plan import absolute_sqlite

    return absolute_sqlite(args.url or _settings(args).database.url)


def _with_queue(args: argparse.Namespace, work: Callable[[Any], Awaitable[T]]) -> T:
    from voicebot.db.engine import opened, sessionmaker
    from voicebot.db.repository import JobRepository

    async def go() -> T:
        async with opened(_url(args)) as engine, sessionmaker(engine)() as session, session.begin():
            return await work(JobRepository(session))

    return asyncio.run(go())


def _run(args: argparse.Namespace) -> int:
    from voicebot import logs
    from voicebot.jobs.worker import JobWorker

    settings = _settings(args)
    logs.configure(settings.log.level, settings.log.format, settings.log.redact_pii, process="jobs")
    worker = JobWorker(_url(args), settings.jobs, settings.llm.resolved())

    async def go() -> int:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await worker.run(stopping)
        return 0

    return asyncio.run(go())


def _when(at: dt.datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def _list(args: argparse.Namespace) -> int:
    async def work(queue: Any) -> tuple[list[Any], dict[str, int]]:
        return await queue.listing(args.status, args.limit), await queue.counts()

    jobs, counts = _with_queue(args, work)
    print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no jobs")
    if jobs:
        print(f"{'id':>6}  {'kind':<12} {'status':<8} {'tries':>5}  {'next run':<19}  key / last error")
    for j in jobs:
        tail = j.key or ""
        if j.last_error:
            tail += f"  ({j.last_error[:80]})"
        tries = f"{j.attempts:>2}/{j.max_attempts:<2}"
        print(f"{j.id:>6}  {j.kind:<12} {j.status:<8} {tries}  {_when(j.run_after):<19}  {tail}")
    return 0


def _show(args: argparse.Namespace) -> int:
    async def work(queue: Any) -> Any:
        return await queue.get(args.id)

    job = _with_queue(args, work)
    if job is None:
        print(f"no job {args.id}")
        return 1
    fields = (
        "id",
        "kind",
        "key",
        "status",
        "attempts",
        "max_attempts",
        "run_after",
        "locked_by",
        "locked_until",
        "created_at",
        "updated_at",
        "last_error",
    )
    doc = {f: getattr(job, f) for f in fields} | {"payload": job.payload}
    print(json.dumps(doc, indent=2, default=str))
    return 0


def _retry(args: argparse.Namespace) -> int:
    async def work(queue: Any) -> bool:
        return bool(await queue.retry(args.id, dt.datetime.now(dt.UTC)))

    if not _with_queue(args, work):
        print(f"job {args.id} is not a dead letter (only failed jobs are retried)")
        return 1
    print(f"job {args.id} is queued again")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = sub.add_parser("jobs", help="the post-call job queue (webhooks, summaries, redaction, purge)")
    jsub = jobs.add_subparsers(dest="jobs_command", required=True)
    p_run = jsub.add_parser("run", help="work the queue until stopped (any number of nodes may)")
    p_list = jsub.add_parser("list", help="the newest jobs and how many are in each state")
    p_list.add_argument("--status", choices=("queued", "running", "done", "failed"), default=None)
    p_list.add_argument("--limit", type=int, default=50)
    p_show = jsub.add_parser("show", help="one job in full")
    p_show.add_argument("id", type=int)
    p_retry = jsub.add_parser("retry", help="queue a dead letter (failed job) again")
    p_retry.add_argument("id", type=int)
    for p, func in ((p_run, _run), (p_list, _list), (p_show, _show), (p_retry, _retry)):
        p.add_argument("--url", default=None, help="SQLAlchemy URL (default: the database.url setting)")
        p.add_argument(
            "--config", type=Path, default=None, help="voicebot settings file (also VOICEBOT_CONFIG)"
        )
        p.set_defaults(func=func)
