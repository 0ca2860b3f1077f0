"""An LLM reply as a stream of sentences (and at most one tool call), through litellm against any
OpenAI-compatible endpoint, over an admin-configured chain of providers.

One retry loop for this dependency, here. Providers are tried in order (``llm`` first, then
``llm.fallbacks``); each has a circuit breaker shared by the node's call workers (a file under the
run directory, voicebot/inference/breaker.py), so a provider that failed is skipped by every call
for a while instead of costing each caller its timeout. Within one reply:

* a provider that gives no first token within ``first_token_timeout_s`` is given up on at once
  (never retried: a black-holed provider would cost the caller that wait again) and the next one
  is asked; a fast failure (refused connection, a 5xx, a 429) is retried ``retries`` times on the
  same provider first;
* all of it within ``first_token_budget_s`` before the first word and ``total_timeout_s`` overall;
* once text has been spoken, a failure ends the reply with what was said (repeating half a reply
  would confuse the caller).

The API key is read from the environment variable the settings name, and never logged. Usage
(tokens in and out, the model that answered, its first-token time) is reported after the reply.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from voicebot.errors import VoicebotError
from voicebot.inference.breaker import SharedBreaker
from voicebot.llm.phone import Budget, for_phone
from voicebot.llm.sentences import SentenceSplitter
from voicebot.logs import get_logger

log = get_logger(__name__)


class LlmError(VoicebotError):
    """The LLM could not answer (not configured, unreachable, timed out, refused)."""

    retryable = True


class LlmProvider(BaseModel):
    """One more model to ask when the ones before it fail (settings ``llm.fallbacks``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)  # a litellm model name
    api_base: str = ""  # empty: the provider's own endpoint (litellm knows it)
    api_key_env: str = ""


class LlmConfig(BaseModel):
    """The LLM behind dialplan `agent` steps (settings `llm`); unset, agent steps take their error path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = ""  # a litellm model name, e.g. "openai/smollm2" for an OpenAI-compatible server
    api_base: str = ""  # e.g. http://127.0.0.1:8080/v1
    api_key_env: str = ""  # the NAME of the environment variable holding the key (never the key)
    fallbacks: list[LlmProvider] = Field(default_factory=list, max_length=5)  # asked in order
    first_token_timeout_s: float = Field(5.0, gt=0, le=60)  # per provider: then the next one
    first_token_budget_s: float = Field(8.0, gt=0, le=120)  # every provider together
    total_timeout_s: float = Field(20.0, gt=0, le=300)
    max_tokens: int = Field(160, ge=1, le=4096)
    max_spoken_chars: int = Field(400, ge=40, le=4000)  # a reply stops after the sentence crossing this
    temperature: float = Field(0.3, ge=0, le=2)
    retries: int = Field(1, ge=0, le=3)  # per provider, fast failures only, before the first token
    breaker_open_s: float = Field(15.0, gt=0, le=600)  # a failed provider is skipped this long
    # Keep the reply to a conversation's first question this long and say it at once to the next
    # caller who asks the same (agent steps without tools only; voicebot/llm/answers.py). 0: off.
    answer_cache_ttl_s: float = Field(0.0, ge=0, le=7 * 86400)
    # The embedded offline model (voicebot/llm/local.py): `voicebot run` starts and supervises a
    # llama-server on local_listen and the call workers use it as `model`/`api_base`.
    local: bool = False
    local_listen: str = Field("127.0.0.1:18080", pattern=r"^127\.0\.0\.1:[0-9]{1,5}$")
    local_threads: int = Field(1, ge=1, le=64)
    local_parallel: int = Field(4, ge=1, le=64)  # conversations it decodes at once (2048 tokens each)

    @model_validator(mode="after")
    def _local_or_remote(self) -> LlmConfig:
        if self.local and (self.model or self.api_base):
            raise ValueError(
                "llm.local starts the bundled model's server itself: leave llm.model and llm.api_base "
                "empty (llm.fallbacks may still name other providers)"
            )
        return self

    @property
    def configured(self) -> bool:
        return self.local or bool(self.model and self.api_base)

    def resolved(self) -> LlmConfig:
        """With ``local``: the settings the call workers use to reach the node's llama-server."""
        if not self.local:
            return self
        from voicebot.llm.local import LITELLM_MODEL

        return self.model_copy(
            update={"local": False, "model": LITELLM_MODEL, "api_base": f"http://{self.local_listen}/v1"}
        )

    def providers(self) -> list[LlmProvider]:
        first = LlmProvider(model=self.model, api_base=self.api_base, api_key_env=self.api_key_env)
        return [first, *self.fallbacks]


Message = tuple[str, str]  # (role, content); roles user, assistant, tool_call, tool (JSON content)


@dataclass(frozen=True)
class ToolRequest:
    """The model asks for a tool: its call id, the tool's name and the arguments as JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Usage:
    """What one reply used, for the call's record and its cost."""

    model: str
    tokens_in: int
    tokens_out: int
    first_token_ms: int
    fallbacks: int  # providers given up on before this one answered
    complete: bool = True  # False: the stream broke after words were said


def load_litellm() -> Any:
    """Import litellm (about 3 s of CPU: call workers do it before they report ready), offline: its
    price list comes from the package, not from GitHub."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as exc:  # pragma: no cover - a pinned dependency
        raise LlmError("litellm is not installed: run `make install`") from exc
    return litellm


async def sentences(
    config: LlmConfig, system: str, messages: Sequence[Message], phone: bool = True
) -> AsyncIterator[str]:
    """Yield the reply sentence by sentence (``phone``: fit to be spoken, within the length budget;
    else as written). Raises LlmError when nothing could be said."""
    async for item in reply(config, system, messages, phone=phone):
        if isinstance(item, str):
            yield item


async def reply(
    config: LlmConfig,
    system: str,
    messages: Sequence[Message],
    tools: Sequence[dict[str, Any]] = (),
    breaker_dir: Path | None = None,
    phone: bool = True,
) -> AsyncIterator[str | ToolRequest | Usage]:
    """Sentences as they come, then a ToolRequest if the model asked for a tool, then its Usage.
    Raises LlmError when no provider could say anything."""
    splitter = SentenceSplitter()
    budget = Budget(config.max_spoken_chars if phone else 1 << 30)
    speakable = for_phone if phone else str.strip
    calls: dict[int, dict[str, str]] = {}
    async for item in _stream(config, system, messages, tools, breaker_dir):
        if isinstance(item, str):
            for sentence in map(speakable, splitter.feed(item)):
                if not sentence:
                    continue
                if not budget.take(sentence):
                    log.info("llm.reply_cut", max_spoken_chars=config.max_spoken_chars)
                    return  # the rest is not said (and the stream is closed)
                yield sentence
        elif isinstance(item, Usage):
            for sentence in map(speakable, splitter.flush()):
                if sentence and budget.take(sentence):
                    yield sentence
            if calls:
                first = calls[min(calls)]  # one tool at a time: the model is asked again after it
                yield ToolRequest(first["id"], first["name"], first["arguments"])
            yield item
        else:  # a tool-call delta: (index, id, name, arguments piece)
            index, call_id, name, piece = item
            call = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            call["id"] = call["id"] or call_id
            call["name"] = call["name"] or name
            call["arguments"] += piece


def to_openai(system: str, messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Our (role, text) history as OpenAI chat messages. A tool result whose call was cut off the
    front of the history, or a call without its result, is left out (the API refuses either)."""
    answered = {_field(text, "id") for role, text in messages if role == "tool"}
    asked: set[str] = set()
    out: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for role, text in messages:
        if role == "tool_call":
            call = _json(text)
            if call.get("id") not in answered:
                continue
            asked.add(call["id"])
            entry = {
                "id": call["id"],
                "type": "function",
                "function": {"name": call.get("name", ""), "arguments": call.get("arguments") or "{}"},
            }
            last = out[-1]
            if last["role"] == "assistant" and "tool_calls" not in last:
                last["tool_calls"] = [entry]  # the words said before the call, and the call
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [entry]})
        elif role == "tool":
            result = _json(text)
            if result.get("id") in asked:
                out.append(
                    {"role": "tool", "tool_call_id": result["id"], "content": result.get("content", "")}
                )
        else:
            out.append({"role": role, "content": text})
    return out


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _field(text: str, name: str) -> Any:
    return _json(text).get(name)


class _NoFirstToken(Exception):
    pass


async def _stream(
    config: LlmConfig,
    system: str,
    messages: Sequence[Message],
    tools: Sequence[dict[str, Any]],
    breaker_dir: Path | None,
) -> AsyncIterator[str | Usage | tuple[int, str, str, str]]:
    if not config.configured:
        raise LlmError("no LLM is configured (settings llm.model and llm.api_base)")
    litellm = load_litellm()
    payload = to_openai(system, messages)
    started_at = time.monotonic()
    deadline = started_at + config.total_timeout_s
    first_deadline = started_at + config.first_token_budget_s
    why: list[str] = []
    chain = [
        (p, SharedBreaker(breaker_dir, f"llm-{p.model}-{p.api_base}", open_s=config.breaker_open_s))
        for p in config.providers()
    ]
    order = [c for c in chain if c[1].allow()] or chain  # every circuit open: try them anyway
    for given_up, (provider, breaker) in enumerate(order):
        key = os.environ.get(provider.api_key_env, "") if provider.api_key_env else ""
        for attempt in range(config.retries + 1):
            left = min(first_deadline, deadline) - time.monotonic()
            if left <= 0:
                break
            spoke = False
            wait = 0.0
            tokens_out = tokens_in = 0
            first_ms = 0
            try:
                kwargs: dict[str, Any] = {
                    "model": provider.model,
                    "api_key": key or "none",
                    "messages": payload,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                    "max_tokens": config.max_tokens,
                    "temperature": config.temperature,
                    "timeout": config.total_timeout_s,
                    "max_retries": 0,  # our loop, not the client's: its retries triple the timeouts
                }
                if provider.api_base:
                    kwargs["api_base"] = provider.api_base
                if tools:
                    kwargs["tools"] = list(tools)
                    # litellm 1.106 routes any request with tools through its MCP gateway check,
                    # which imports the `mcp` package (not installed: we use no MCP servers).
                    kwargs["_skip_mcp_handler"] = True
                wait = min(config.first_token_timeout_s, left)
                first_by = time.monotonic() + wait  # this attempt's first token, or the next provider
                try:
                    stream: Any = await asyncio.wait_for(litellm.acompletion(**kwargs), wait)
                except TimeoutError:
                    raise _NoFirstToken from None
                iterator = stream.__aiter__()
                while True:
                    limit = (deadline if spoke else first_by) - time.monotonic()
                    if limit <= 0 and not spoke:
                        raise _NoFirstToken
                    if limit <= 0:
                        raise TimeoutError("the reply took longer than llm.total_timeout_s")
                    try:
                        chunk = await asyncio.wait_for(iterator.__anext__(), limit)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        if not spoke:
                            raise _NoFirstToken from None
                        raise
                    usage = getattr(chunk, "usage", None)
                    if usage:
                        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
                        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
                    if not chunk.choices:
                        continue
                    delta = chunk.choices[0].delta
                    text = getattr(delta, "content", None)
                    if text:
                        if not spoke:
                            first_ms = int((time.monotonic() - started_at) * 1000)
                        spoke = True
                        yield text
                    for call in getattr(delta, "tool_calls", None) or []:
                        if not spoke:
                            first_ms = int((time.monotonic() - started_at) * 1000)
                        spoke = True
                        fn = getattr(call, "function", None)
                        yield (
                            int(getattr(call, "index", 0) or 0),
                            getattr(call, "id", None) or "",
                            (getattr(fn, "name", None) or "") if fn else "",
                            (getattr(fn, "arguments", None) or "") if fn else "",
                        )
                breaker.success()
                yield Usage(provider.model, tokens_in, tokens_out, first_ms, given_up)
                return
            except Exception as exc:  # litellm raises many kinds; cancellation is not one of them
                if spoke:
                    log.warning("llm.stream_broken", model=provider.model, error=_why(exc))
                    yield Usage(provider.model, tokens_in, tokens_out, first_ms, given_up, complete=False)
                    return  # keep what was said
                breaker.failure()
                if isinstance(exc, _NoFirstToken):
                    why.append(f"{provider.model}: no first token within {wait:g} s")
                    log.warning("llm.no_first_token", model=provider.model, waited_s=round(wait, 2))
                    break  # not this provider again in this reply
                why.append(f"{provider.model}: {_why(exc)}")
                log.warning("llm.retry", model=provider.model, attempt=attempt + 1, error=_why(exc))
                if attempt < config.retries:
                    await asyncio.sleep(0.2 * (attempt + 1))
    raise LlmError("the LLM did not answer: " + "; ".join(why or ["no time left"]))


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
