"""What the benchmarks read from /proc: process trees, their CPU time and memory."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(root: int) -> list[int]:
    """root and all its descendants, from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children[ppid].append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def cpu_rss(pids: list[int]) -> tuple[float, int]:
    cpu, rss = 0.0, 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / CLK
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return cpu, rss


def cpu_by_name() -> dict[str, float]:
    """CPU seconds used so far by every process on the machine, grouped by command (sipp, tshark...)."""
    out: dict[str, float] = defaultdict(float)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name.startswith("python") and len(cmd) > 2:
            # `python -m voicebot.ua.main` -> "ua.main" (several modules are called main)
            name = cmd[2].decode(errors="replace").removeprefix("voicebot.") if cmd[1] == b"-m" else name
        out[name] += (int(fields[11]) + int(fields[12])) / CLK
    return out


def tree_cpu_s(root: int) -> float:
    """CPU seconds used so far by ``root``'s tree, including descendants that have exited and been
    waited for (each parent's cutime/cstime): per-call workers come and go within a measurement."""
    total = 0.0
    for pid in tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / CLK  # utime stime cutime cstime
    return total
