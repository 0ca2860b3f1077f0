"""`voicebot capacity`: nodes for a peak, and which resource binds first (pure arithmetic)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voicebot.capacity import CapacityError, Measured, Node, plan, report


def bench(tmp_path: Path, cores: float = 0.4, start_s: float = 9.0, mb: float = 370, gap: int = 700) -> Path:
    path = tmp_path / "turn_latency.json"
    path.write_text(
        json.dumps(
            {
                "calls": 4,
                "turn_gap_ms": {"n": 12, "p50": 600, "p95": gap, "p99": gap},
                "memory_mb": {"peak_total_per_call": mb},
                "cpu": {"cores": 2, "cores_per_call_talking": cores, "worker_start_cpu_s_per_call": start_s},
            }
        )
    )
    return path


def test_cpu_is_planned_at_the_measured_density_and_the_headroom_is_planned_for(tmp_path: Path) -> None:
    m = Measured.from_bench(bench(tmp_path))  # 4 calls on 2 cores: 0.5 cores per call
    p = plan(m, peak_calls=100, headroom=0.3, node=Node(cores=8, memory_mb=32 * 1024, ua_workers=8))
    assert p.cores_per_call == pytest.approx(0.5)  # not the 0.4 used on average: latency is bursty
    assert p.planned_calls == 130 and p.per_node == {"cpu": 16, "memory": 88, "call slots": 32}
    assert p.binding == "cpu" and p.calls_per_node == 16 and p.nodes == 9  # ceil(130 / 16)
    assert p.total_cores == pytest.approx(65.0) and p.total_memory_mb == 130 * 370


def test_memory_or_call_slots_bind_when_they_are_shorter() -> None:
    m = Measured("x", 4, 0.5, cores_per_call_talking=0.05, worker_start_cpu_s=0.0, memory_mb_per_call=370,
                 turn_gap_p95_ms=None)  # fmt: skip
    small_ram = plan(m, 40, 0.0, Node(cores=32, memory_mb=4096, ua_workers=8))
    assert small_ram.binding == "memory" and small_ram.calls_per_node == 11 and small_ram.nodes == 4
    few_slots = plan(m, 40, 0.0, Node(cores=32, memory_mb=64 * 1024, ua_workers=2))
    assert few_slots.binding == "call slots" and few_slots.calls_per_node == 8 and few_slots.nodes == 5


def test_the_report_says_what_binds_and_warns_when_the_measurement_missed_the_latency_target(
    tmp_path: Path,
) -> None:
    m = Measured.from_bench(bench(tmp_path, gap=1700))
    node = Node(cores=2, memory_mb=8192, ua_workers=2)
    text = "\n".join(report(m, plan(m, 10, 0.3, node), node))
    assert "cpu binds first" in text and "13 concurrent calls" in text
    assert "warning: at the measured load the turn gap p95 was 1700 ms" in text


def test_unusable_measurements_and_arguments_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"calls": 4}')
    with pytest.raises(CapacityError, match=r"not a bench/turn_latency\.py --json result"):
        Measured.from_bench(bad)
    with pytest.raises(CapacityError, match="No such file"):
        Measured.from_bench(tmp_path / "missing.json")
    m = Measured.from_bench(bench(tmp_path))
    with pytest.raises(CapacityError, match="cannot hold a single call"):
        plan(m, 10, 0.3, Node(cores=0.2, memory_mb=8192, ua_workers=2))
    with pytest.raises(CapacityError, match="peak calls must be >= 1"):
        plan(m, 0, 0.3, Node(cores=2, memory_mb=8192, ua_workers=2))


def test_the_command_plans_from_the_measurement_kept_in_the_repository() -> None:
    import subprocess
    import sys

    node = ["--node-cores", "16", "--node-memory-gb", "32", "--ua-workers", "8"]
    run = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "capacity", "--peak-calls", "100", "--headroom", "30%", *node],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "plan for 130 concurrent calls" in run.stdout
    assert "a node with 16 cores, 32.0 GB and 8 UA workers takes" in run.stdout
    assert "node(s) of" in run.stdout and ("binds first" in run.stdout or "bind together" in run.stdout)
