"""Answers to repeated first questions: which requests may share one, and for how long."""

from __future__ import annotations

from pathlib import Path

from voicebot.llm.answers import AnswerCache, key

TOOL = [{"type": "function", "function": {"name": "move"}}]


def test_only_a_first_question_without_tools_has_a_key_and_it_ignores_case_and_punctuation() -> None:
    first = key("m", "Be brief.", [("assistant", "Hello!"), ("user", "When do you close on Sunday?")], [])
    assert first == key("m", "Be brief.", [("user", "when do you close on sunday")], [])
    assert first != key("m", "Be brief, Dana.", [("user", "When do you close on Sunday?")], [])
    assert key("m", "i", [("user", "When do you close?")], TOOL) is None  # it could act
    assert key("m", "i", [("user", "hi"), ("assistant", "Hello"), ("user", "When?")], []) is None
    assert key("m", "i", [("user", "(pressed 5)")], []) is None
    assert key("m", "i", [], []) is None


def test_an_answer_is_kept_for_its_ttl(tmp_path: Path) -> None:
    now = [1000.0]
    cache = AnswerCache(tmp_path / "answers", ttl_s=60, clock=lambda: now[0])
    cache.put("k", ["We close at four on Sundays."])
    assert cache.get("k") == ["We close at four on Sundays."]
    now[0] += 61
    assert cache.get("k") is None and not (tmp_path / "answers" / "k").exists()
    (tmp_path / "answers" / "bad").write_text("{not json")
    assert cache.get("bad") is None
