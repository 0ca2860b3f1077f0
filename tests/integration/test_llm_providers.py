"""The LLM client against real OpenAI-compatible HTTP servers (scripted, on loopback) through
litellm: streamed tool calls, fallback providers, first-token budgets, a breaker shared by the
node's call workers (a directory), usage."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from support.net import free_port
from support.scripted_llm import Reply, serve

from voicebot.llm.client import LlmConfig, LlmError, LlmProvider, ToolRequest, Usage, reply

pytestmark = pytest.mark.integration
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "move_appointment",
            "description": "Move it.",
            "parameters": {"type": "object", "properties": {"booking_ref": {"type": "string"}}},
        },
    }
]


def collect(config: LlmConfig, breakers: Path | None = None, tools: Any = ()) -> list[Any]:
    async def run() -> list[Any]:
        return [x async for x in reply(config, "You help.", [("user", "hello")], tools, breakers)]

    return asyncio.run(run())


def config(primary: str, *fallbacks: str, **kw: Any) -> LlmConfig:
    return LlmConfig(
        model="openai/primary",
        api_base=primary,
        fallbacks=[LlmProvider(model=f"openai/fallback{i}", api_base=b) for i, b in enumerate(fallbacks)],
        **kw,
    )


def test_a_streamed_tool_call_arrives_whole_after_the_words_with_usage() -> None:
    def script(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        assert [t["function"]["name"] for t in tools] == ["move_appointment"]
        return Reply(text="Let me move that.", tool="move_appointment", arguments={"booking_ref": "AB12CD"})

    with serve(script) as llm:
        items = collect(config(llm.api_base), tools=TOOLS)
    assert items[0] == "Let me move that."
    assert isinstance(items[1], ToolRequest) and items[1].name == "move_appointment"
    assert items[1].arguments == '{"booking_ref": "AB12CD"}' and items[1].id
    usage = items[2]
    assert isinstance(usage, Usage) and usage.model == "openai/primary" and usage.tokens_in > 0
    assert usage.tokens_out > 0 and usage.fallbacks == 0
    assert llm.requests[0]["tools"] == TOOLS


def test_a_failing_primary_falls_back_and_its_open_breaker_is_shared(tmp_path: Path) -> None:
    with (
        serve(lambda m, t: Reply(status=500)) as bad,
        serve(lambda m, t: Reply(text="Fallback here.")) as good,
    ):
        cfg = config(bad.api_base, good.api_base, retries=1)
        items = collect(cfg, tmp_path)
        assert items[0] == "Fallback here." and items[-1].fallbacks == 1
        assert len(bad.requests) == 2, "a fast failure is retried once on the same provider"
        # Another call worker of the node (same breaker directory) skips the primary at once.
        items = collect(cfg, tmp_path)
        assert items[0] == "Fallback here." and len(bad.requests) == 2
        assert list(tmp_path.iterdir()), "the circuit state is a file other workers read"


def test_a_black_holed_primary_costs_one_first_token_timeout_not_two() -> None:
    with (
        serve(lambda m, t: Reply(text="never", hang_s=30)) as hole,
        serve(lambda m, t: Reply(text="Here.")) as good,
    ):
        cfg = config(hole.api_base, good.api_base, first_token_timeout_s=1.5, retries=1)
        started = time.monotonic()
        items = collect(cfg)
        took = time.monotonic() - started
    assert items[0] == "Here." and len(hole.requests) == 1, "a timeout is not retried on the same provider"
    assert took < 10, f"{took:.1f} s"  # a backstop against hanging, not a latency target


def test_every_provider_down_raises_with_each_ones_reason() -> None:
    cfg = config(f"http://127.0.0.1:{free_port()}/v1", f"http://127.0.0.1:{free_port()}/v1", retries=0)
    with pytest.raises(LlmError) as err:
        collect(cfg)
    assert "openai/primary" in str(err.value) and "openai/fallback0" in str(err.value)
