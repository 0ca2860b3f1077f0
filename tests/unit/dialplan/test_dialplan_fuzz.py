"""Seeded fuzzing of the loader, checker and interpreter: broken files become diagnostics, random
event sequences never raise (the property "never a traceback" on inputs nobody wrote by hand)."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from voicebot.dialplan.check import check_paths
from voicebot.dialplan.events import (
    CallStarted,
    Dtmf,
    Event,
    NoInputTimeout,
    PlaybackDone,
    RecordingDone,
    SayAction,
    SpeechFinal,
    ToolResult,
    TransferResult,
)
from voicebot.dialplan.interpreter import Interpreter, State
from voicebot.dialplan.plan import parse

REPO = Path(__file__).resolve().parents[3]
SOURCES = sorted(p for p in (REPO / "dialplans").glob("*.yaml") if not p.name.endswith(".test.yaml"))
TOKENS = [b"{", b"}", b"[", b"]", b":", b"- ", b"&a ", b"*a", b"!!python/object:os.system", b"\t",
          b"\n", b"'", b'"', b"yes", b"08", b"10:30", b"<<: ", b"\xff", b"#", b",", b"{x}", b"~"]  # fmt: skip
VALUES: list[Any] = [None, 0, -1, 10**12, 1.5, True, "", "x", "{a}", "nowhere", [], {}, [1, "a"],
                     {"a": 1}, {"goto": "x"}, "a" * 3000, "..//", {"when": "x.y", "goto": "a"},
                     "goodbye", "main_menu", "2", "sales"]  # fmt: skip


def test_byte_mutations_only_ever_give_diagnostics(tmp_path: Path) -> None:
    rnd = random.Random(7)
    sources = [p.read_bytes() for p in SOURCES]
    for _ in range(300):
        data = bytearray(rnd.choice(sources))
        for _ in range(rnd.randint(1, 5)):
            pos = rnd.randrange(len(data) + 1)
            if rnd.random() < 0.6:
                data[pos:pos] = rnd.choice(TOKENS)
            else:
                del data[pos : pos + rnd.randint(1, 20)]
        path = tmp_path / "f.yaml"
        path.write_bytes(bytes(data))
        check_paths([path], ["sales"], ["https://billing.example.internal/api"])  # must not raise


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        yield from _paths(child, (*prefix, key))


def _mutated(rnd: random.Random, plan: Any) -> Any:
    plan = copy.deepcopy(plan)
    for _ in range(rnd.randint(1, 2)):  # one or two changes: most mutants stay runnable
        where = rnd.choice(list(_paths(plan))[1:])
        parent = plan
        for key in where[:-1]:
            parent = parent[key]
        parent[where[-1]] = copy.deepcopy(rnd.choice(VALUES))
    return plan


def _events(rnd: random.Random, n: float) -> Event:
    return rnd.choice(
        [
            SpeechFinal(rnd.choice(["yes", "no", "sales", "tomorrow", "ten", "agent", ""]), rnd.random(), n),
            Dtmf(rnd.choice("0123456789*#"), n),
            NoInputTimeout(n),
            TransferResult(rnd.random() < 0.5, n, "busy"),
            ToolResult(rnd.random() < 0.5, rnd.choice([{}, {"a": [1]}, "err", None]), n),
            RecordingDone("m.wav", 3.0, n),
        ]
    )


def test_mutated_plans_check_or_run_without_raising(tmp_path: Path) -> None:
    rnd = random.Random(11)
    (tmp_path / "subflows").mkdir()
    for sub in (REPO / "dialplans" / "subflows").glob("*.yaml"):
        (tmp_path / "subflows" / sub.name).write_bytes(sub.read_bytes())
    plans = [yaml.safe_load(p.read_text()) for p in SOURCES]
    ran = 0
    for _ in range(300):
        path = tmp_path / "f.yaml"
        path.write_text(yaml.safe_dump(_mutated(rnd, rnd.choice(plans)), sort_keys=False))
        if any(d.severity == "error" for d in check_paths([path])):
            continue
        it = Interpreter(parse(path.read_bytes(), str(path)))
        actions = it.handle(CallStarted(0.0, today="2026-01-01"))
        for n in range(40):
            for a in actions:
                if isinstance(a, SayAction) and rnd.random() < 0.8:
                    it.handle(PlaybackDone(a.mark, float(n)))
            actions = it.handle(_events(rnd, float(n)))
        State.model_validate_json(it.state.model_dump_json())
        ran += 1
    assert ran >= 20  # enough mutants were valid to exercise the interpreter
