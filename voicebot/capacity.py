"""`voicebot capacity`: how many nodes, cores and how much memory a peak of concurrent calls needs.

Pure arithmetic on what a benchmark measured on real calls (bench/turn_latency.py --json). CPU is
planned at the density that was measured (N calls on C cores: C / N cores per call), not at the
average use: turns arrive together and recognition is bursty, so a machine that is busy on average
for only 40 % of its cores can already miss the turn-gap target, and the latency measured at that
density is the latency the plan keeps. Memory is the peak of the whole process tree per concurrent
call. Per node, calls are limited by its cores, its memory and its call slots (UA workers x 4);
whichever allows the fewest calls binds first.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicebot.errors import VoicebotError

CALLS_PER_UA = 4  # the pjsua2 wheel's PJSUA_MAX_CALLS


class CapacityError(VoicebotError):
    """The measurement file cannot be used for planning."""


@dataclass(frozen=True)
class Measured:
    """Per-call costs from one benchmark run."""

    source: str
    concurrent_calls: int
    bench_cores: float
    cores_per_call_talking: float
    worker_start_cpu_s: float
    memory_mb_per_call: float
    turn_gap_p95_ms: float | None

    @classmethod
    def from_bench(cls, path: Path) -> Measured:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            cpu = data["cpu"]
            return cls(
                source=str(path),
                concurrent_calls=int(data["calls"]),
                bench_cores=float(cpu["cores"]),
                cores_per_call_talking=float(cpu["cores_per_call_talking"]),
                worker_start_cpu_s=float(cpu.get("worker_start_cpu_s_per_call") or 0.0),
                # PSS when measured (shared pages counted once: call workers forked from the fork
                # server share most of theirs), else the RSS sum
                memory_mb_per_call=float(
                    data["memory_mb"].get("peak_pss_per_call") or data["memory_mb"]["peak_total_per_call"]
                ),
                turn_gap_p95_ms=(data.get("turn_gap_ms") or {}).get("p95"),
            )
        except OSError as exc:
            raise CapacityError(f"{path}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CapacityError(
                f"{path}: not a bench/turn_latency.py --json result with cpu and memory figures ({exc!r})"
            ) from None


@dataclass(frozen=True)
class Node:
    cores: float
    memory_mb: float
    ua_workers: int


@dataclass(frozen=True)
class Plan:
    peak_calls: int
    planned_calls: int  # with the headroom
    calls_per_node: int
    binding: str  # "cpu", "memory", "call slots", or several joined by "and" when they tie
    per_node: dict[str, int]  # calls one node allows by each resource
    nodes: int
    cores_per_call: float
    memory_mb_per_call: float
    total_cores: float
    total_memory_mb: float


def plan(m: Measured, peak_calls: int, headroom: float, node: Node) -> Plan:
    """Nodes of size ``node`` for ``peak_calls`` concurrent calls plus ``headroom`` (0.3 = 30 %)."""
    if peak_calls < 1 or headroom < 0:
        raise CapacityError("peak calls must be >= 1 and headroom >= 0")
    if m.concurrent_calls < 1 or m.bench_cores <= 0:
        raise CapacityError(f"{m.source}: no calls or no cores measured")
    cores_per_call = m.bench_cores / m.concurrent_calls
    planned = math.ceil(peak_calls * (1 + headroom))
    per_node = {
        "cpu": math.floor(node.cores / cores_per_call) if cores_per_call > 0 else 10**9,
        "memory": math.floor(node.memory_mb / m.memory_mb_per_call) if m.memory_mb_per_call > 0 else 10**9,
        "call slots": node.ua_workers * CALLS_PER_UA,
    }
    calls_per_node = min(per_node.values())
    binding = " and ".join(k for k, v in per_node.items() if v == calls_per_node)
    if calls_per_node < 1:
        raise CapacityError(f"one node of this size cannot hold a single call ({binding} binds)")
    nodes = math.ceil(planned / calls_per_node)
    return Plan(
        peak_calls=peak_calls,
        planned_calls=planned,
        calls_per_node=calls_per_node,
        binding=binding,
        per_node=per_node,
        nodes=nodes,
        cores_per_call=cores_per_call,
        memory_mb_per_call=m.memory_mb_per_call,
        total_cores=round(planned * cores_per_call, 1),
        total_memory_mb=round(planned * m.memory_mb_per_call),
    )


def report(m: Measured, p: Plan, node: Node, turn_gap_target_ms: float = 900.0) -> list[str]:
    lines = [
        f"measured: {m.source}: {m.concurrent_calls} concurrent calls on {m.bench_cores:g} cores"
        + (f", turn gap p95 {m.turn_gap_p95_ms:.0f} ms" if m.turn_gap_p95_ms is not None else ""),
        f"  in use: {m.cores_per_call_talking:.3f} cores per call on average while calls are up, "
        f"{m.worker_start_cpu_s:.1f} CPU s to replace an ended call's worker; "
        f"{m.memory_mb_per_call:.0f} MB per call",
        f"peak {p.peak_calls} calls + headroom = plan for {p.planned_calls} concurrent calls",
        f"per call: {p.cores_per_call:.3f} cores (the measured density), {p.memory_mb_per_call:.0f} MB",
        f"whole fleet: {p.total_cores} cores, {p.total_memory_mb / 1024:.1f} GB",
        f"a node with {node.cores:g} cores, {node.memory_mb / 1024:.1f} GB and {node.ua_workers} UA workers "
        "takes " + ", ".join(f"{v} calls by {k}" for k, v in p.per_node.items()),
        f"-> {p.nodes} node(s) of {p.calls_per_node} calls; {p.binding} "
        + ("bind together" if " and " in p.binding else "binds first"),
    ]
    if m.turn_gap_p95_ms is not None and m.turn_gap_p95_ms > turn_gap_target_ms:
        lines.append(
            f"warning: at the measured load the turn gap p95 was {m.turn_gap_p95_ms:.0f} ms (target "
            f"{turn_gap_target_ms:.0f} ms): these figures keep today's latency, they do not reach the target"
        )
    return lines
