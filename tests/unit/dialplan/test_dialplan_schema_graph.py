"""The JSON Schema export and the flow graph."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from voicebot.cli import main
from voicebot.dialplan.check import check_paths
from voicebot.dialplan.graph import mermaid
from voicebot.dialplan.plan import parse
from voicebot.dialplan.schema import json_schema
from voicebot.dialplan.verbs import VERBS

REPO = Path(__file__).resolve().parents[3]


def test_schema_covers_every_verb_and_its_references_resolve(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dialplan", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json.loads(json.dumps(json_schema()))
    variants = schema["properties"]["steps"]["additionalProperties"]["oneOf"]
    assert sorted(v["required"][0] for v in variants) == sorted(VERBS)
    refs = set(re.findall(r'"#/\$defs/(\w+)"', json.dumps(schema)))
    assert refs and refs <= set(schema["$defs"])
    collect = next(v for v in variants if v["required"] == ["collect"])["properties"]["collect"]
    assert "validate" in collect["properties"]  # the name admins write, not the Python one


def test_mermaid_names_subflow_steps_safely(write: Callable[[str, str], Path]) -> None:
    write(
        "sub.yaml",
        "id: s\nversion: 1\nkind: subflow\nsteps:\n"
        "  ask: {collect: {prompt: Q?, into: q}}\n  r: {return: {}}\n",
    )
    main_plan = write("m.yaml", "id: m\nversion: 1\nsteps:\n  v: {subflow: sub.yaml}\n  e: {hangup: {}}\n")
    text = mermaid(parse(main_plan.read_bytes(), str(main_plan)))
    assert '  v["v: subflow sub.yaml"]' in text
    assert (
        "  v --> v_ask" in text and "  v_r --> e" in text and "/" not in text.split("\n", 1)[1].split('"')[0]
    )


def test_graph_formats(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graphviz comes with `make install` (apt); without it, SVG/PNG say what is missing."""
    example = str(REPO / "dialplans" / "example.yaml")
    assert main(["dialplan", "graph", example, "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith('digraph "example" {')
    assert shutil.which("dot"), "graphviz is installed by scripts/install-system.sh"
    svg, png = tmp_path / "flow.svg", tmp_path / "flow.png"
    assert main(["dialplan", "graph", example, "--format", "svg", "-o", str(svg)]) == 0
    assert b"<svg" in svg.read_bytes() and b"sales" in svg.read_bytes()
    assert main(["dialplan", "graph", example, "--format", "png", "-o", str(png)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    assert main(["dialplan", "graph", example, "--format", "svg", "-o", str(svg)]) == 2
    assert "needs Graphviz's `dot` program" in capsys.readouterr().err


def test_graph_of_a_broken_file_prints_the_errors(
    write: Callable[[str, str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write("b.yaml", "id: b\nversion: 1\nsteps:\n  a: {sya: Hi}\n")
    assert main(["dialplan", "graph", str(path)]) == 1
    assert "unknown verb 'sya'; did you mean 'say'?" in capsys.readouterr().err


def test_sensitive_values_spoken_back_are_reported(write: Callable[[str, str], Path]) -> None:
    path = write(
        "s.yaml",
        "id: s\nversion: 1\nsteps:\n"
        "  p: {collect: {prompt: PIN?, into: pin, kind: digits, sensitive: true}}\n"
        "  e: {hangup: 'Your PIN is {pin}'}\n",
    )
    assert [d.message for d in check_paths([path])] == [
        "sensitive variable 'pin' is spoken or sent on here; is that intended?"
    ]
