"""Our (role, text) agent history as OpenAI chat messages, tool calls and results paired."""

from __future__ import annotations

import json

from voicebot.llm.client import to_openai


def call(i: str, name: str = "move", args: str = "{}") -> tuple[str, str]:
    return "tool_call", json.dumps({"id": i, "name": name, "arguments": args})


def result(i: str, content: str = "ok") -> tuple[str, str]:
    return "tool", json.dumps({"id": i, "content": content})


def test_words_before_a_tool_call_and_the_call_are_one_assistant_message() -> None:
    out = to_openai("sys", [("user", "move it"), ("assistant", "Let me see."), call("c1"), result("c1")])
    assert out == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "move it"},
        {
            "role": "assistant",
            "content": "Let me see.",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "move", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]


def test_a_call_without_its_result_and_a_result_without_its_call_are_left_out() -> None:
    # The history keeps the newest messages: a call's result can survive its call being cut off.
    out = to_openai("sys", [result("old"), ("user", "hi"), call("c2"), ("assistant", "Shall I?")])
    assert [m["role"] for m in out] == ["system", "user", "assistant"]
    assert out[-1] == {"role": "assistant", "content": "Shall I?"}
    assert to_openai("s", [call("c3"), result("c3")])[1]["content"] is None
