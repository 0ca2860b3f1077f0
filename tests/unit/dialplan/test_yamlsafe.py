"""Hostile and broken YAML: clear errors with positions, fast, never a traceback."""

from __future__ import annotations

import time

import pytest

from voicebot.dialplan.yamlsafe import Limits, YamlError, load

BOMB = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def errors_of(text: str | bytes, **limits: int) -> list[str]:
    with pytest.raises(YamlError) as info:
        load(text, "plan.yaml", Limits(**limits))
    return [str(d) for d in info.value.diagnostics]


def test_good_yaml_with_positions_and_no_warnings() -> None:
    out = load("id: demo\nsteps:\n  - say: Hello\n  - hangup: {}\n", "plan.yaml")
    assert out.data == {"id": "demo", "steps": [{"say": "Hello"}, {"hangup": {}}]}
    assert out.where(("steps", 1, "hangup")) == (4, 5)  # where the key is written
    assert out.where(("steps", 0, "say", "nonexistent")) == (3, 5)
    assert out.warnings == []


def test_billion_laughs_fails_fast() -> None:
    t0 = time.perf_counter()
    (msg,) = errors_of(BOMB)
    assert "billion laughs" in msg and msg.startswith("plan.yaml:")
    assert time.perf_counter() - t0 < 1.0


def test_python_tags_are_refused_never_constructed() -> None:
    (msg,) = errors_of("x: !!python/object/apply:os.system ['touch /tmp/pwned']\n")
    assert msg.startswith("plan.yaml:1:4: error: tag 'tag:yaml.org,2002:python/object/apply:os.system'")
    assert errors_of("x: !custom 1\n")[0].startswith("plan.yaml:1:4: error: tag '!custom'")


def test_duplicate_keys_name_both_places() -> None:
    (msg,) = errors_of("id: a\nsteps: []\nid: b\n")
    assert msg == "plan.yaml:3:1: error: duplicate key 'id' (first at line 1)"


def test_tabs_and_invalid_utf8_have_positions() -> None:
    assert errors_of("steps:\n\t- say: hi\n") == [
        "plan.yaml:2:1: error: tab in indentation; YAML indents with spaces only"
    ]
    assert errors_of(b"id: ok\nsay: caf\xe9\n") == [
        "plan.yaml:2:9: error: invalid UTF-8; save the file as UTF-8"
    ]


def test_depth_size_and_syntax_limits() -> None:
    assert "nesting deeper" in errors_of("a: " + "[" * 60 + "]" * 60 + "\n")[0]
    assert "the limit is 100" in errors_of("a: " + "x" * 200, max_bytes=100)[0]
    assert errors_of("a: [1, 2\nb: 3\n")[0].startswith("plan.yaml:2:")


def test_yaml_11_traps_are_reported() -> None:
    out = load("confirm: yes\npin: 0123\nlabel: '0123'\nanswer: 'no'\n", "plan.yaml")
    assert out.data == {"confirm": True, "pin": 83, "label": "0123", "answer": "no"}
    warnings = out.warnings_except(lambda path: False)
    assert [(w.line, w.severity) for w in warnings] == [(1, "warning"), (2, "warning")]
    assert "read as the number 83" in warnings[1].message
    assert out.warnings_except(lambda path: path == ("confirm",)) == warnings[1:]
    assert "key 'on' is read as True" in errors_of("on: call_started\n")[0]


@pytest.mark.parametrize("text", ["", "---\n", "# only a comment\n"])
def test_empty_documents(text: str) -> None:
    assert load(text).data is None
