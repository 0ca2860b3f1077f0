"""Share a load test out over processes: a pjsua2 endpoint holds 4 calls, so each shard (a child
process running run.py) places at most ``PER_SHARD`` at once. The parent sums their progress
(a small JSON file each rewrites every second) and merges their results."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from voicebot.errors import ConfigError
from voicebot.loadtest.results import CallResult
from voicebot.loadtest.run import MAX_CALLS, Plan, run
from voicebot.loadtest.script import from_tests

PER_SHARD = MAX_CALLS - 1  # a slot spare for a call whose end pjsua2 has not processed yet


def split(plan: Plan, burst: int = 0, burst_at_s: float = 0.0) -> list[Plan]:
    """The shards' plans: concurrency and calls shared out as evenly as they go; a burst of ``burst``
    calls ``burst_at_s`` into the run gets shards of its own (at most 3 calls each, started together)."""
    n = max(1, math.ceil(plan.concurrency / PER_SHARD))
    plans = []
    for i in range(n):
        conc = plan.concurrency // n + (i < plan.concurrency % n)
        calls = 0
        if plan.calls:
            calls = plan.calls // n + (i < plan.calls % n)
        elif not plan.duration_s:
            calls = conc
        if calls or plan.duration_s:
            plans.append(dataclasses.replace(plan, concurrency=conc, calls=calls))
    k = math.ceil(burst / PER_SHARD)
    for i in range(k):
        size = burst // k + (i < burst % k)
        plans.append(
            dataclasses.replace(
                plan, concurrency=size, calls=size, duration_s=0.0, ramp_s=0.0, start_delay_s=burst_at_s
            )
        )
    return plans


def run_sharded(
    plan: Plan,
    tests: Path,
    names: list[str],
    progress: Callable[[dict[str, int], float], None],
    burst: int = 0,
    burst_at_s: float = 0.0,
) -> tuple[list[CallResult], float]:
    shards = split(plan, burst, burst_at_s)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="voicebot-loadtest-") as tmp:
        procs = []
        for i, shard in enumerate(shards):
            spec = Path(tmp) / f"shard{i}.json"
            spec.write_text(
                json.dumps(
                    {
                        "plan": dataclasses.asdict(shard),
                        "tests": str(tests),
                        "names": names,
                        "offset": i,
                        "status": str(Path(tmp) / f"status{i}.json"),
                        "out": str(Path(tmp) / f"out{i}.json"),
                    }
                )
            )
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-X", "faulthandler", "-m", "voicebot.loadtest.shards", str(spec)],
                    stdout=subprocess.DEVNULL,
                    stderr=open(Path(tmp) / f"err{i}.txt", "wb"),  # noqa: SIM115 - closed with the dir
                )
            )
        try:
            while any(p.poll() is None for p in procs):
                time.sleep(1.0)
                progress(_sum_status(Path(tmp), len(procs)), time.monotonic() - started)
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
            raise
        calls: list[CallResult] = []
        for i, p in enumerate(procs):
            out = Path(tmp) / f"out{i}.json"
            if p.returncode != 0 or not out.exists():
                err = (Path(tmp) / f"err{i}.txt").read_text(errors="replace").strip().splitlines()
                raise ConfigError(f"load test shard {i} failed: " + "\n".join(err[-30:]))
            calls += [CallResult(**c) for c in json.loads(out.read_text())]
    return calls, time.monotonic() - started


def _sum_status(tmp: Path, n: int) -> dict[str, int]:
    total: dict[str, int] = {}
    for i in range(n):
        try:
            status = json.loads((tmp / f"status{i}.json").read_text())
        except (OSError, ValueError):
            continue
        for k, v in status.items():
            total[k] = total.get(k, 0) + int(v)
    return total


def _shard(spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    plan = Plan(**{**spec["plan"], "codecs": tuple(spec["plan"]["codecs"])})
    scripts, _ = from_tests(Path(spec["tests"]), spec["names"] or None)
    k = spec["offset"] % len(scripts) if scripts else 0
    scripts = scripts[k:] + scripts[:k]  # shards start on different scripts
    status = Path(spec["status"])

    def write_status(counts: dict[str, int]) -> None:
        tmp = status.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(counts))
        os.replace(tmp, status)

    calls, _ = run(plan, scripts, write_status)
    Path(spec["out"]).write_text(json.dumps([c.as_dict() for c in calls]))
    return 0


if __name__ == "__main__":
    sys.exit(_shard(Path(sys.argv[1])))
