"""The ``voicebot`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from voicebot import __version__
from voicebot.errors import VoicebotError


def _cmd_version(_: argparse.Namespace) -> int:
    print(f"voicebot {__version__}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from voicebot.config import load_settings
    from voicebot.supervisor.main import run_supervisor

    settings = load_settings(args.config)
    return run_supervisor(settings)


def _cmd_edge(args: argparse.Namespace) -> int:
    """The SIP edge alone, dispatching to the UA workers that nodes announce in the database."""
    from voicebot.cluster.edge_node import run_edge
    from voicebot.config import load_settings

    return run_edge(load_settings(args.config))


def _cmd_infer(args: argparse.Namespace) -> int:
    """The speech service alone (another host, a GPU node): the settings' asr.*, tts.*, inference.*."""
    import asyncio

    from voicebot import logs
    from voicebot.config import load_settings
    from voicebot.inference.server import serve
    from voicebot.supervisor.plan import infer_params

    settings = load_settings(args.config)
    params = infer_params(settings)
    if args.listen:
        host, port = args.listen
        params = params.model_copy(update={"host": host, "port": port})
    logs.configure(params.log_level, params.log_format, params.redact_pii, process="infer")
    return asyncio.run(serve(params))


def _cmd_config_check(args: argparse.Namespace) -> int:
    """Print the effective settings (file, environment, defaults merged) with secrets masked."""
    import yaml

    from voicebot.config import effective_settings, load_settings

    settings = load_settings(args.config)
    print(yaml.safe_dump(effective_settings(settings), sort_keys=False, allow_unicode=True), end="")
    print("configuration OK", file=sys.stderr)
    return 0


def _listen(text: str) -> tuple[str, int]:
    from voicebot.config import host_port

    try:
        return host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _percent(text: str) -> float:
    value = float(text.rstrip("%"))
    return value / 100 if text.endswith("%") or value > 1 else value


def _cmd_capacity(args: argparse.Namespace) -> int:
    """Nodes, cores and memory for a peak of concurrent calls, from a benchmark's measurements."""
    import os

    from voicebot.capacity import Measured, Node, plan, report
    from voicebot.config import load_settings

    measured = Measured.from_bench(args.bench)
    mem_mb = args.node_memory_gb * 1024 if args.node_memory_gb else _host_memory_mb()
    ua_workers = args.ua_workers or load_settings(args.config).workers.ua_workers
    node = Node(cores=args.node_cores or float(os.cpu_count() or 1), memory_mb=mem_mb, ua_workers=ua_workers)
    result = plan(measured, args.peak_calls, args.headroom, node)
    print("\n".join(report(measured, result, node)))
    return 0


def _host_memory_mb() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    return 0.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicebot", description="Telephony-first voice bot platform")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser("run", help="answer calls: UA workers, per-call workers and (K > 1) the Kamailio edge")
    p.add_argument("--config", type=Path, default=None, help="YAML settings file (also VOICEBOT_CONFIG)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "edge",
        help="the Kamailio SIP edge alone, in front of the nodes sharing its database (cluster.role: node)",
    )
    p.add_argument("--config", type=Path, default=None, help="YAML settings file (also VOICEBOT_CONFIG)")
    p.set_defaults(func=_cmd_edge)

    p = sub.add_parser(
        "infer",
        help="the speech service (OpenAI-compatible audio API) on its own, e.g. on a GPU host",
    )
    p.add_argument("--config", type=Path, default=None, help="YAML settings file (also VOICEBOT_CONFIG)")
    p.add_argument("--listen", type=_listen, default=None, help="HOST:PORT (default: inference.listen)")
    p.set_defaults(func=_cmd_infer)

    p = sub.add_parser("config", help="settings")
    csub = p.add_subparsers(dest="config_command", required=True)
    p = csub.add_parser(
        "check", help="check the settings and print the effective values, secrets masked (exit 2 if invalid)"
    )
    p.add_argument("--config", type=Path, default=None, help="YAML settings file (also VOICEBOT_CONFIG)")
    p.set_defaults(func=_cmd_config_check)

    p = sub.add_parser(
        "capacity",
        help="nodes, cores and memory for a peak of concurrent calls, from measured per-call costs",
    )
    p.add_argument("--peak-calls", type=int, required=True, help="concurrent calls at the busiest moment")
    p.add_argument(
        "--headroom", type=_percent, default=0.3, help="spare capacity on top, e.g. 30%% (default)"
    )
    p.add_argument(
        "--bench",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "bench" / "results" / "turn_latency-4.json",
        help="bench/turn_latency.py --json output (default: this machine's 4-call run in bench/results)",
    )
    p.add_argument("--node-cores", type=float, default=None, help="cores per node (default: this machine's)")
    p.add_argument(
        "--node-memory-gb", type=float, default=None, help="memory per node (default: this machine's)"
    )
    p.add_argument(
        "--ua-workers", type=int, default=None, help="UA workers per node (default: the settings')"
    )
    p.add_argument("--config", type=Path, default=None, help="YAML settings file (also VOICEBOT_CONFIG)")
    p.set_defaults(func=_cmd_capacity)

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands contributed by packages (dialplan tools, db)."""
    from voicebot.console import cli as console_cli
    from voicebot.db import cli as db_cli
    from voicebot.dialplan import cli as dialplan_cli
    from voicebot.jobs import cli as jobs_cli
    from voicebot.loadtest import cli as loadtest_cli
    from voicebot.outbound import cli as outbound_cli
    from voicebot.reports import cli as reports_cli

    dialplan_cli.add_commands(sub)
    db_cli.add_commands(sub)
    jobs_cli.add_commands(sub)
    reports_cli.add_commands(sub)
    outbound_cli.add_commands(sub)
    loadtest_cli.add_commands(sub)
    console_cli.add_commands(sub)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except VoicebotError as exc:
        print(f"voicebot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
