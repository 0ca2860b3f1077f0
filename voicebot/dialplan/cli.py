"""Dialplan commands for the ``voicebot`` CLI."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _plans(paths: list[Path]) -> list[Path]:
    """Dialplan files among ``paths`` (a `dialplans/*.yaml` glob also matches the *.test.yaml files)."""
    return [p for p in paths if not p.name.endswith(".test.yaml")]


def _check(args: argparse.Namespace) -> int:
    from voicebot.dialplan.check import check_paths

    queues = [q for q in args.queues.split(",") if q] if args.queues is not None else None
    args.paths = _plans(args.paths)
    diags = check_paths(args.paths, queues)
    for d in diags:
        print(d, file=sys.stdout)
    errors = sum(d.severity == "error" for d in diags)
    print(f"{len(args.paths)} file(s), {errors} error(s), {len(diags) - errors} warning(s)", file=sys.stderr)
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
    from voicebot.dialplan.plan import parse

    plan = parse(args.path.read_bytes(), str(args.path))
    print(mermaid(plan) if args.format == "mermaid" else dot(plan), end="")
    return 0


def _versions(args: argparse.Namespace) -> int:
    from voicebot.dialplan.versions import VersionStore

    store = VersionStore(args.store)
    if args.dialplan_command == "publish":
        queues = [q for q in args.queues.split(",") if q] if args.queues else None
        plan, ref = store.publish(args.path, args.canary, queues)
        role = f"canary for {args.canary}% of new calls" if args.canary else "live"
        print(f"{plan.id} {ref} is {role}")
    elif args.dialplan_command == "promote":
        print(f"{args.id} {store.promote(args.id)} is live")
    elif args.dialplan_command == "rollback":
        print(f"{args.id} {store.rollback(args.id)} is live (canary dropped if there was one)")
    print(store.state(args.id if hasattr(args, "id") else plan.id).to_json())
    return 0


def _chat(args: argparse.Namespace) -> int:
    from voicebot.dialplan.chat import run_chat
    from voicebot.dialplan.plan import parse

    plan = parse(args.path.read_bytes(), str(args.path))
    return run_chat(plan, sys.stdin, print, transfers_succeed=not args.fail_transfers)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the dialplan commands on the top-level parser."""
    dp = sub.add_parser("dialplan", help="check, test and draw dialplans; export their JSON Schema")
    dsub = dp.add_subparsers(dest="dialplan_command", required=True)
    p = dsub.add_parser("check", help="check dialplan files (exit 1 on errors)")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--queues", help="comma-separated queue names the admin configured (default: not checked)")
    p.set_defaults(func=_check)
    p = dsub.add_parser("schema", help="print the JSON Schema of dialplan files (for editors)")
    p.set_defaults(func=_schema)
    p = dsub.add_parser("test", help="run the conversation tests next to each dialplan (NAME.test.yaml)")
    p.add_argument("paths", nargs="+", type=Path)
    p.set_defaults(func=_test)
    p = dsub.add_parser(
        "graph", help="print the flow as Mermaid or Graphviz dot (render dot with `dot -Tsvg`)"
    )
    p.add_argument("path", type=Path)
    p.add_argument("--format", choices=["mermaid", "dot"], default="mermaid")
    p.set_defaults(func=_graph)
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
            p.add_argument("--queues", help="comma-separated queue names the admin configured")
        else:
            p.add_argument("id")
        p.add_argument("--store", type=Path, default=Path("var/dialplans"), help="version store directory")
        p.set_defaults(func=_versions)
    p = sub.add_parser(
        "chat", help="talk to a dialplan in the terminal (#123 for keys, empty line = silence)"
    )
    p.add_argument("path", type=Path)
    p.add_argument("--fail-transfers", action="store_true", help="simulate queues that do not answer")
    p.set_defaults(func=_chat)
