"""The local LLM server through litellm, the client the bot uses: streamed replies, and a dead server."""

from __future__ import annotations

import os
import time

import pytest
from support.llm_server import MODEL_NAME
from support.net import free_port

# litellm fetches its price map from GitHub at import unless told to use its bundled copy; offline that
# costs seconds of retries in every process.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm

pytestmark = pytest.mark.integration

PROMPT = [{"role": "user", "content": "A caller says hello. Greet them in one short sentence."}]


async def stream_reply(api_base: str, timeout: float = 30.0) -> tuple[list[str], float | None]:
    """The reply's text chunks as they arrived, and seconds from request to the first one."""
    started = time.perf_counter()
    first: float | None = None
    chunks: list[str] = []
    stream = await litellm.acompletion(
        model=f"openai/{MODEL_NAME}",
        api_base=api_base,
        api_key="none",
        messages=PROMPT,
        stream=True,
        max_tokens=48,
        temperature=0,
        seed=42,
        # the OpenAI client's own retries would triple every timeout
        max_retries=0,
        timeout=timeout,
    )
    async for chunk in stream:
        text = chunk.choices[0].delta.content if chunk.choices else None
        if text:
            if first is None:
                first = time.perf_counter() - started
            chunks.append(text)
    return chunks, first


async def test_reply_streams_token_by_token(llm_server: str, record_property) -> None:
    chunks, first_token_s = await stream_reply(llm_server)
    assert len(chunks) >= 2, f"expected an incremental stream, got {chunks!r}"
    assert "".join(chunks).strip()
    assert first_token_s is not None
    # recorded, not asserted: timing depends on the machine (docs/llm.md has this machine's figures)
    record_property("llm_first_token_s", round(first_token_s, 4))
    record_property("llm_chunks", len(chunks))


async def test_greedy_sampling_makes_replies_reproducible(llm_server: str) -> None:
    first, _ = await stream_reply(llm_server)
    second, _ = await stream_reply(llm_server)
    assert "".join(first) == "".join(second)


async def test_dead_server_fails_fast_with_a_connection_error() -> None:
    port = free_port()  # nothing listens there
    started = time.perf_counter()
    # litellm 1.106 maps the OpenAI client's APIConnectionError to a 500 InternalServerError; the refused
    # connection stays in the exception chain.
    with pytest.raises(litellm.InternalServerError, match="Connection error") as caught:
        await stream_reply(f"http://127.0.0.1:{port}/v1", timeout=30.0)
    elapsed = time.perf_counter() - started
    assert elapsed < 10.0, f"a refused connection took {elapsed:.1f}s to surface (retries?)"
    chain: list[type[BaseException]] = []
    error: BaseException | None = caught.value
    while error is not None:
        chain.append(type(error))
        error = error.__cause__ or error.__context__
    assert ConnectionRefusedError in chain, chain
