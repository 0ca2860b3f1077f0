"""An LLM reply as a stream of sentences, through litellm against any OpenAI-compatible endpoint.

One retry loop for this dependency, here: a request that fails before its first token is retried
(bounded, with a short back-off); once text has been spoken, a failure ends the reply with what was
said (repeating half a reply would confuse the caller). The API key is read from the environment
variable the settings name, and never logged.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from voicebot.errors import VoicebotError
from voicebot.llm.sentences import SentenceSplitter
from voicebot.logs import get_logger

log = get_logger(__name__)


class LlmError(VoicebotError):
    """The LLM could not answer (not configured, unreachable, timed out, refused)."""

    retryable = True


class LlmConfig(BaseModel):
    """The LLM behind dialplan `agent` steps (settings `llm`); unset, agent steps take their error path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = ""  # a litellm model name, e.g. "openai/smollm2" for an OpenAI-compatible server
    api_base: str = ""  # e.g. http://127.0.0.1:8080/v1
    api_key_env: str = ""  # the NAME of the environment variable holding the key (never the key)
    first_token_timeout_s: float = Field(5.0, gt=0, le=60)
    total_timeout_s: float = Field(20.0, gt=0, le=300)
    max_tokens: int = Field(160, ge=1, le=4096)
    temperature: float = Field(0.3, ge=0, le=2)
    retries: int = Field(1, ge=0, le=3)  # before the first token only

    @property
    def configured(self) -> bool:
        return bool(self.model and self.api_base)


Message = tuple[str, str]  # (role, content)


def load_litellm() -> Any:
    """Import litellm (about 3 s of CPU: call workers do it before they report ready), offline: its
    price list comes from the package, not from GitHub."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as exc:  # pragma: no cover - a pinned dependency
        raise LlmError("litellm is not installed: run `make install`") from exc
    return litellm


async def sentences(config: LlmConfig, system: str, messages: Sequence[Message]) -> AsyncIterator[str]:
    """Yield the reply sentence by sentence. Raises LlmError when nothing could be said."""
    splitter = SentenceSplitter()
    async for delta in _tokens(config, system, messages):
        for sentence in splitter.feed(delta):
            yield sentence
    for sentence in splitter.flush():
        yield sentence


async def _tokens(config: LlmConfig, system: str, messages: Sequence[Message]) -> AsyncIterator[str]:
    if not config.configured:
        raise LlmError("no LLM is configured (settings llm.model and llm.api_base)")
    litellm = load_litellm()

    key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
    payload = [{"role": "system", "content": system}] + [{"role": r, "content": c} for r, c in messages]
    deadline = time.monotonic() + config.total_timeout_s
    for attempt in range(config.retries + 1):
        started = False
        try:
            stream: Any = await asyncio.wait_for(
                litellm.acompletion(
                    model=config.model,
                    api_base=config.api_base,
                    api_key=key or "none",
                    messages=payload,
                    stream=True,
                    max_tokens=config.max_tokens,
                    temperature=config.temperature,
                    timeout=config.total_timeout_s,
                    max_retries=0,  # our loop, not the client's: its retries triple the timeouts
                ),
                config.first_token_timeout_s,
            )
            iterator = stream.__aiter__()
            while True:
                left = deadline - time.monotonic()
                wait = config.first_token_timeout_s if not started else left
                if left <= 0:
                    raise TimeoutError("the reply took longer than llm.total_timeout_s")
                try:
                    chunk = await asyncio.wait_for(iterator.__anext__(), min(wait, left))
                except StopAsyncIteration:
                    return
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    started = True
                    yield delta
        except Exception as exc:  # litellm raises many kinds; cancellation is not one of them
            why = f"{type(exc).__name__}: {str(exc)[:200]}"
            if started:
                log.warning("llm.stream_broken", error=why)
                return  # keep what was said
            if attempt >= config.retries or time.monotonic() >= deadline:
                raise LlmError(f"the LLM did not answer: {why}") from None
            log.warning("llm.retry", attempt=attempt + 1, error=why)
            await asyncio.sleep(0.2 * (attempt + 1))
