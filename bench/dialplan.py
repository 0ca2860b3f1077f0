#!/usr/bin/env python3
"""Dialplan checker and interpreter speed.

    .venv/bin/python bench/dialplan.py

* check: `check_paths` on a generated 5,000-step dialplan (menus, collects, branches, sets, says);
* interpreter: events per second on one core, driving calls through the generated plan;
* hostile input: time to refuse a "billion laughs" alias bomb and 400,000-deep nesting.
Targets (issue 3): check <= 1 s, >= 50,000 events/s.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicebot.dialplan.check import check_paths
from voicebot.dialplan.interpreter import CallStarted, Dtmf, Interpreter, SpeechFinal
from voicebot.dialplan.plan import parse
from voicebot.dialplan.yamlsafe import YamlError, load

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def refuse_ms(text: str) -> float:
    """Milliseconds until the loader refuses ``text`` (it must)."""
    t0 = time.perf_counter()
    try:
        load(text, "hostile.yaml")
    except YamlError:
        return (time.perf_counter() - t0) * 1000
    raise AssertionError("hostile input was accepted")


def generate(n: int) -> str:
    lines = ["id: big", "version: 1", "queues: [sales]", "variables: {score: 0}", "steps:"]
    for i in range(0, n - 1, 5):
        nxt = f"s{i + 5}" if i + 5 < n - 1 else "end"
        lines += [
            f"  s{i}:",
            f"    say: Step {i}, score {{score}}.",
            f"  s{i + 1}:",
            f"    menu: {{prompt: Press 1 or say next.,"
            f" options: [{{keys: '1', words: [next], goto: s{i + 2}}}], no_match: s{i + 1}, no_input: end}}",
            f"  s{i + 2}:",
            f"    set: {{values: {{score: {i}}}}}",
            f"  s{i + 3}:",
            f"    branch: {{cases: [{{when: 'score > {n}', goto: end}}], default: s{i + 4}}}",
            f"  s{i + 4}:",
            f"    collect: {{prompt: 'Digits?', into: d{i}, kind: digits, max_digits: 2, no_input: end}}",
            f"    next: {nxt}",
        ]
    lines += ["  end:", "    hangup: Bye."]
    return "\n".join(lines) + "\n"


def main() -> int:
    text = generate(5000)
    path = Path(tempfile.mkdtemp()) / "big.yaml"
    path.write_text(text)
    times = []
    for _ in range(5):  # the first run is a cold one (imports warm, caches empty): it counts too
        t0 = time.perf_counter()
        diags = check_paths([path])
        times.append(time.perf_counter() - t0)
    errors = [d for d in diags if d.severity == "error"]
    print(
        f"check 5,000-step dialplan ({len(text) // 1024} KiB): first {times[0]:.3f} s, "
        f"median of 5 {statistics.median(times):.3f} s, worst {max(times):.3f} s, {len(errors)} errors"
    )
    plan = parse(text, "big.yaml")
    events = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        it = Interpreter(plan)
        it.handle(CallStarted(0.0))
        events += 1
        for k in range(200):  # menu (speech), collect (2 digits), repeat
            it.handle(SpeechFinal("next please", 0.9, k))
            it.handle(Dtmf("4", k))
            it.handle(Dtmf("2", k))
            events += 3
    rate = events / (time.perf_counter() - t0)
    print(f"interpreter: {rate:,.0f} events/s on one core")
    deep = "a: " + "[" * 400_000 + "]" * 400_000
    print(f"refused: billion laughs {refuse_ms(BOMB):.1f} ms, 400,000-deep nesting {refuse_ms(deep):.1f} ms")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
