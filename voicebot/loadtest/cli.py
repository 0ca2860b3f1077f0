"""`voicebot loadtest TARGET --tests FILE.test.yaml [--test NAME] --concurrency N ...`"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from voicebot.loadtest import plot, results, slo
from voicebot.loadtest.faults import CommandRunner, FaultProxy, ProxyFault, TimedCommand
from voicebot.loadtest.run import Plan
from voicebot.loadtest.script import from_tests
from voicebot.loadtest.shards import run_sharded

REPO = Path(__file__).resolve().parents[2]


def _levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"concurrency is N or a rising list N,M,... not {text!r}") from None
    if not levels or min(levels) < 1 or levels != sorted(set(levels)):
        raise argparse.ArgumentTypeError(f"concurrency is N or a rising list N,M,... not {text!r}")
    return levels


def _loadtest(args: argparse.Namespace) -> int:
    scripts, skipped = from_tests(args.tests, args.test or None)
    limits = slo.read(args.slo) if args.slo else None
    faults = [ProxyFault.parse(text) for text in args.fault_proxy]
    commands = [TimedCommand.parse(text) for text in args.at]
    if not 0 <= args.rtp_loss <= 100:
        print("voicebot: error: --rtp-loss is a percentage (0-100)", file=sys.stderr)
        return 2
    for s in skipped:
        print(f"left out: {s.name}: {s.why}", file=sys.stderr)
    if not scripts:
        print("voicebot: error: no test of that file can be played over SIP", file=sys.stderr)
        return 2
    tty = sys.stderr.isatty()

    def progress(n: dict[str, int], elapsed: float) -> None:
        line = (
            f"{elapsed:5.0f} s  placed {n.get('placed', 0)}  up {n.get('up', 0)}  done {n.get('done', 0)}  "
            f"as expected {n.get('ok', 0)}  failed {n.get('failed', 0)}"
        )
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    proxies = [FaultProxy(f) for f in faults]
    started: list[FaultProxy] = []
    try:
        for proxy in proxies:
            proxy.start()
            started.append(proxy)
        return _levels_run(args, limits, proxies, commands, progress)
    finally:
        for proxy in started:
            proxy.stop()


def _levels_run(
    args: argparse.Namespace,
    limits: slo.Slo | None,
    proxies: list[FaultProxy],
    commands: list[TimedCommand],
    progress: Any,
) -> int:
    tty = sys.stderr.isatty()
    levels: list[dict[str, object]] = []
    summaries: list[dict[str, Any]] = []
    missed: list[str] = []
    for concurrency in args.concurrency:
        plan = Plan(
            target=args.target,
            concurrency=concurrency,
            calls=args.calls,
            duration_s=args.duration,
            ramp_s=args.ramp,
            max_call_s=args.max_call_s,
            bind=args.bind,
            voice=args.voice,
            rtp_loss_pct=args.rtp_loss,
        )
        before = [p.counts.as_dict() for p in proxies]
        runner = CommandRunner(commands)
        runner.start()
        try:
            calls, wall = run_sharded(plan, args.tests, args.test, progress, *args.burst)
        finally:
            runner.stop()
        if tty:
            print(file=sys.stderr)
        summary = results.summarise(calls, wall, concurrency)
        summary["faults"] = {
            "rtp_loss_pct": args.rtp_loss,
            "proxies": [
                {"listen": p.fault.listen, "upstream": p.fault.upstream, "status": p.fault.status,
                 "rate": p.fault.rate, "delay_s": p.fault.delay_s}
                | {k: v - b[k] for k, v in p.counts.as_dict().items()}
                for p, b in zip(proxies, before, strict=True)
            ],
            "commands": runner.done,
        }  # fmt: skip
        print(results.table(summary))
        for line in _fault_lines(summary["faults"]):
            print(line)
        for c in calls:
            if not c.ok:
                print(f"  not as expected: {c.script}: {c.why or c.outcome}")
        at = f"at {concurrency} calls: " if len(args.concurrency) > 1 else ""
        missed += [at + m for m in (slo.misses(limits, summary) if limits else [])]
        levels.append({"summary": summary, "calls": [c.as_dict() for c in calls]})
        summaries.append(summary)
    if args.out:
        data = {
            "target": args.target,
            "tests": str(args.tests),
            "summary": levels[-1]["summary"],  # the highest concurrency
            "levels": levels,
            "slo": limits.model_dump(exclude_none=True) if limits else None,
            "slo_missed": missed,
            "calls": levels[-1]["calls"],
        }
        args.out.write_text(json.dumps(data, indent=1))
    if args.plot:
        args.plot.write_text(plot.svg(summaries, f"voicebot loadtest {args.target} ({args.tests.name})"))
    for line in missed:
        print(f"SLO missed: {line}")
    return 1 if missed else 0


def _burst(text: str) -> tuple[int, float]:
    size, sep, at = text.partition("@")
    try:
        value = (int(size), float(at) if sep else 0.0)
    except ValueError:
        value = (0, -1.0)
    if value[0] < 1 or value[1] < 0:
        raise argparse.ArgumentTypeError(f"a burst is CALLS@SECONDS (e.g. 6@20), not {text!r}")
    return value


def _fault_lines(faults: dict[str, Any]) -> list[str]:
    lines = [f"RTP loss {faults['rtp_loss_pct']}% each way"] if faults["rtp_loss_pct"] else []
    for p in faults["proxies"]:
        lines.append(
            f"fault proxy {p['listen']} -> {p['upstream']}: {p['requests']} requests, {p['failed']} answered "
            f"{p['status'] or '-'}, {p['delayed']} delayed {p['delay_s']} s, {p['forwarded']} forwarded"
        )
    for c in faults["commands"]:
        lines.append(f"at {c['ran_at_s']} s: {c['command']} -> exit {c['exit']}")
    return lines


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "loadtest",
        help="scripted callers over SIP (from conversation tests) at a concurrency: outcomes and latencies",
    )
    p.add_argument("target", help="the SIP URI to call, e.g. sip:100@127.0.0.1:5060")
    p.add_argument(
        "--tests",
        type=Path,
        default=REPO / "dialplans" / "example.test.yaml",
        help="conversation tests (tests:) or a caller script (callers:, with WAV turns and barge-ins) "
        "whose turns the callers play (default: the example dialplan's tests)",
    )
    p.add_argument("--test", action="append", default=[], help="only this test (by name; repeatable)")
    p.add_argument(
        "--concurrency",
        type=_levels,
        default=[2],
        help="calls up at once (default 2), or a rising list (1,2,4) run one after another: the knee",
    )
    p.add_argument("--calls", type=int, default=0, help="calls to place per level (default: the concurrency)")
    p.add_argument("--duration", type=float, default=0.0, help="keep placing calls this many seconds")
    p.add_argument("--ramp", type=float, default=0.0, help="reach full concurrency over this many seconds")
    p.add_argument(
        "--burst",
        type=_burst,
        default=(0, 0.0),
        metavar="CALLS@SECONDS",
        help="CALLS more callers start together this long into each level, on top of its concurrency",
    )
    p.add_argument("--max-call-s", type=float, default=120.0, help="hang up a call still up after this")
    p.add_argument("--bind", default="", help="local address (default: loopback for a loopback target)")
    p.add_argument(
        "--voice",
        choices=["piper", "espeak"],
        default="piper",
        help="the callers' voice: piper en_US-joe-medium (default) or espeak-ng; use one unlike the bot's",
    )
    p.add_argument(
        "--rtp-loss", type=int, default=0, help="drop this %% of RTP packets each way (the callers' pjmedia)"
    )
    p.add_argument(
        "--fault-proxy",
        action="append",
        default=[],
        metavar="LISTEN=UPSTREAM,...",
        help="put a fault proxy in front of an HTTP dependency (a tool backend, the LLM): "
        "127.0.0.1:9101=http://127.0.0.1:8080,status=429,rate=0.3,delay_s=2; point the bot at LISTEN",
    )
    p.add_argument(
        "--at",
        action="append",
        default=[],
        metavar="SECONDS:COMMAND",
        help="run a shell command this long into each level (e.g. stop the database; restore it later)",
    )
    p.add_argument("--slo", type=Path, default=None, help="SLO file (YAML): exit 1 when a limit is missed")
    p.add_argument(
        "--out", type=Path, default=None, help="write the results (summary and every call) as JSON"
    )
    p.add_argument("--plot", type=Path, default=None, help="draw latency percentiles per level as an SVG")
    p.set_defaults(func=_loadtest)
