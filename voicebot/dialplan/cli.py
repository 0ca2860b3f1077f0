"""Dialplan commands for the ``voicebot`` CLI: check, schema, test, graph, versions, chat."""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicebot.dialplan.events import AgentTurn
    from voicebot.dialplan.plan import Plan
    from voicebot.llm.client import LlmConfig


def _plans(paths: list[Path]) -> list[Path]:
    """Dialplan files among ``paths``: a directory stands for its top-level ``*.yaml`` files, and
    conversation tests (``*.test.yaml``, which a `dialplans/*.yaml` glob also matches) are skipped."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return [p for p in found if not p.name.endswith(".test.yaml")]


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [part for part in text.split(",") if part]


def _admin_lists(args: argparse.Namespace) -> tuple[list[str] | None, list[str] | None]:
    """Known queue names and tool bases: from --queues/--tools-allow, else from --config."""
    queues, bases = _split(args.queues), _split(args.tools_allow)
    if args.config is not None or os.environ.get("VOICEBOT_CONFIG"):
        from voicebot.config import load_settings

        settings = load_settings(args.config)
        queues = list(settings.queues) if queues is None else queues
        bases = list(settings.tools_allow) if bases is None else bases
    return queues, bases


def _load(path: Path) -> Plan | None:
    """Parse for the commands that need a valid plan; print the diagnostics when it is not."""
    from voicebot.dialplan.plan import parse
    from voicebot.dialplan.yamlsafe import YamlError

    try:
        return parse(path.read_bytes(), str(path))
    except OSError as exc:
        print(f"{path}:1:1: error: cannot read: {exc.strerror}", file=sys.stderr)
    except YamlError as exc:
        print(exc, file=sys.stderr)
    return None


def _check(args: argparse.Namespace) -> int:
    from voicebot.dialplan.check import check_paths
    from voicebot.dialplan.yamlsafe import Diagnostic

    queues, bases = _admin_lists(args)
    paths = _plans(args.paths)
    diags: list[Diagnostic] = []
    for path in paths:
        try:
            diags += check_paths([path], queues, bases)
        except Exception as exc:  # a checker bug must still end in a message an admin can act on
            diags.append(
                Diagnostic(
                    str(path), 1, 1, "error", f"internal error in the checker ({exc!r}); please report it"
                )
            )
    for d in diags:
        print(d)
    errors = sum(d.severity == "error" for d in diags)
    print(f"{len(paths)} file(s), {errors} error(s), {len(diags) - errors} warning(s)", file=sys.stderr)
    return 1 if errors else 0


def _schema(_: argparse.Namespace) -> int:
    from voicebot.dialplan.schema import json_schema

    print(json.dumps(json_schema(), indent=1))
    return 0


def _test(args: argparse.Namespace) -> int:
    from voicebot.dialplan.convtest import run_tests

    failed = total = 0
    for path in _plans(args.paths):
        for outcome in run_tests(path):
            for w in outcome.warnings:
                print(f"warn {w}")
            if outcome.warnings and not outcome.failures:
                continue
            total += 1
            failed += bool(outcome.failures)
            print(f"{'FAIL' if outcome.failures else 'ok  '} {path.name}: {outcome.name}")
            for d in outcome.failures:
                print(f"     {d}")
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


def _graph(args: argparse.Namespace) -> int:
    from voicebot.dialplan.graph import dot, mermaid

    plan = _load(args.path)
    if plan is None:
        return 1
    if args.format in ("mermaid", "dot"):
        text = mermaid(plan) if args.format == "mermaid" else dot(plan)
        if args.output:
            args.output.write_text(text)
        else:
            print(text, end="")
        return 0
    exe = shutil.which("dot")
    if exe is None:
        print(
            f"voicebot: {args.format.upper()} needs Graphviz's `dot` program, which is not installed "
            "(apt install graphviz); --format mermaid or --format dot work without it",
            file=sys.stderr,
        )
        return 2
    # dot reads our generated text only; a bounded run, no shell
    image = subprocess.run(
        [exe, f"-T{args.format}"], input=dot(plan).encode(), capture_output=True, timeout=60, check=True
    ).stdout
    if args.output:
        args.output.write_bytes(image)
    else:
        sys.stdout.buffer.write(image)
    return 0


def _versions(args: argparse.Namespace) -> int:
    from voicebot.config import load_settings
    from voicebot.dialplan.versions import VersionStore

    settings = None if args.store else load_settings(args.config)
    store = VersionStore(args.store or settings.dialplan_store)  # type: ignore[union-attr]
    url = _shared_url(settings)
    if args.dialplan_command == "publish":
        queues, bases = _admin_lists(args)

        def publish(s: VersionStore) -> tuple[Any, str]:
            return s.publish(args.path, args.canary, queues, bases)

        plan, ref = _apply(url, store, publish, lambda r: str(r[0].id))
        role = f"canary for {args.canary}% of new calls" if args.canary else "live"
        print(f"{plan.id} {ref} is {role}")
        plan_id = plan.id
    else:
        plan_id = args.id
        if args.dialplan_command == "promote":
            print(f"{plan_id} {_apply(url, store, lambda s: s.promote(plan_id), lambda _: plan_id)} is live")
        elif args.dialplan_command == "rollback":
            ref = _apply(url, store, lambda s: s.rollback(plan_id), lambda _: plan_id)
            print(f"{plan_id} {ref} is live (canary dropped if there was one)")
        elif url:  # status: the shared state as the database has it
            from voicebot.dialplan import shared

            _reach(lambda: shared.pull_now(url, store))
    print(store.state(plan_id).to_json())
    if url:
        print(f"shared through the database at {url.split('@')[-1]}: every node serves it within seconds")
    return 0


def _shared_url(settings: Any) -> str:
    """The database the versions are shared through ("" with --store, or share_dialplans: false)."""
    if settings is None or not settings.database.share_dialplans or not settings.database.url:
        return ""
    from voicebot.db import migrate
    from voicebot.supervisor.plan import absolute_sqlite

    url = absolute_sqlite(settings.database.url)
    if settings.database.migrate_on_start:
        migrate.upgrade(url)
    return url


def _apply(url: str, store: Any, op: Any, plan_id_of: Any) -> Any:
    """``op`` on the store; through the database (pull, change, push) when the versions are shared."""
    if not url:
        return op(store)
    from voicebot.dialplan import shared

    return _reach(lambda: shared.change(url, store, op, plan_id_of))


def _reach(work: Any) -> Any:
    from voicebot.dialplan.versions import VersionError

    try:
        return work()
    except (OSError, ConnectionError) as exc:
        raise VersionError(f"the shared dialplan versions are out of reach ({exc}); nothing changed") from exc


def _chat(args: argparse.Namespace) -> int:
    from voicebot.dialplan.chat import run_chat

    plan = _load(args.path)
    if plan is None:
        return 1
    from voicebot.config import load_settings

    llm = None
    # --config, else VOICEBOT_CONFIG and VOICEBOT_LLM__*; llm.local: the running node's llama-server
    config = load_settings(args.config).llm.resolved()
    if config.configured:
        llm = functools.partial(_llm_reply, config)
    return run_chat(
        plan, sys.stdin, print, transfers_succeed=not args.fail_transfers, today=args.today, llm=llm
    )


def _llm_reply(config: LlmConfig, turn: AgentTurn) -> str | None:
    """The LLM's whole reply to an agent turn (None when it failed: the plan's error path)."""
    import asyncio

    from voicebot.llm.client import LlmError, sentences

    async def collect() -> str:
        return " ".join([s async for s in sentences(config, turn.instructions, turn.messages)])

    try:
        return asyncio.run(collect())
    except LlmError as exc:
        print(f"     [LLM failed: {exc}]")
        return None


def _admin_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queues", help="comma-separated queue names the admin configured")
    p.add_argument("--tools-allow", help="comma-separated base URLs tool steps may call")
    _config_option(p, "take queues, tools_allow and dialplan_store from this voicebot config")


def _config_option(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--config", type=Path, default=None, help=f"{text} (default: VOICEBOT_CONFIG)")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `voicebot dialplan ...` and `voicebot chat` on the top-level parser."""
    dp = sub.add_parser("dialplan", help="check, test, draw and publish dialplans; export their JSON Schema")
    dsub = dp.add_subparsers(dest="dialplan_command", required=True)
    p = dsub.add_parser("check", help="check dialplan files (exit 1 on errors)")
    p.add_argument("paths", nargs="+", type=Path)
    _admin_options(p)
    p.set_defaults(func=_check)
    p = dsub.add_parser("schema", help="print the JSON Schema of dialplan files (for editors)")
    p.set_defaults(func=_schema)
    p = dsub.add_parser("test", help="run the conversation tests next to each dialplan (NAME.test.yaml)")
    p.add_argument("paths", nargs="+", type=Path)
    p.set_defaults(func=_test)
    p = dsub.add_parser("graph", help="draw the flow: Mermaid, Graphviz dot, or SVG/PNG (needs `dot`)")
    p.add_argument("path", type=Path)
    p.add_argument("--format", choices=["mermaid", "dot", "svg", "png"], default="mermaid")
    p.add_argument("-o", "--output", type=Path, default=None, help="write here instead of stdout")
    p.set_defaults(func=_graph)
    _version_commands(dsub)
    p = sub.add_parser(
        "chat", help="talk to a dialplan in the terminal (#123 for keys, empty line = silence)"
    )
    p.add_argument("path", type=Path)
    p.add_argument("--fail-transfers", action="store_true", help="simulate queues that do not answer")
    p.add_argument("--today", default=None, help="the date callers' 'tomorrow' is relative to (ISO)")
    _config_option(p, "a voicebot config: its `llm` answers agent steps")
    p.set_defaults(func=_chat)


def _version_commands(dsub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, text in (
        ("publish", "check and publish a dialplan version (live, or --canary N %)"),
        ("promote", "make the canary live"),
        ("rollback", "drop the canary, or go back to the previous live version"),
        ("status", "show live, canary and history"),
    ):
        p = dsub.add_parser(name, help=text)
        if name == "publish":
            p.add_argument("path", type=Path)
            p.add_argument("--canary", type=int, default=None, metavar="PERCENT")
            _admin_options(p)
        else:
            p.add_argument("id")
            _config_option(p, "take dialplan_store from this voicebot config")
        p.add_argument(
            "--store",
            type=Path,
            default=None,
            help="version store directory (default: the dialplan_store setting)",
        )
        p.set_defaults(func=_versions)
