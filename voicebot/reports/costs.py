"""What a call cost, from its record and events and the prices in settings (``costs:``; pure).

Parts: the trunk's minutes (each started minute of the call), the caller audio sent to the
recogniser (``transcript`` events: seconds and the provider that decoded them), the characters
synthesised for the call (``tts`` events; prompts from the cache cost nothing), the language
model's tokens in and out (``llm_usage`` events, by the model that answered), and successful
transfers. A key missing from a price table falls back to its "*" entry, else costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

PARTS = ("trunk", "asr", "tts", "llm", "transfer")


def _price(table: Mapping[str, float], key: str) -> float:
    return float(table.get(key, table.get("*", 0.0)))


def call_cost(
    trunk: str, seconds: float, events: Sequence[Mapping[str, Any]], prices: Any
) -> dict[str, float]:
    """``{"trunk": ..., "asr": ..., "tts": ..., "llm": ..., "transfer": ..., "total": ...}`` in
    ``prices.currency``."""
    minutes = math.ceil(max(0.0, seconds) / 60) if seconds > 0 else 0
    parts = dict.fromkeys(PARTS, 0.0)
    parts["trunk"] = minutes * _price(prices.trunk_minute, trunk)
    for e in events:
        kind = e.get("kind")
        if kind == "transcript":
            parts["asr"] += float(e.get("audio_s") or 0.0) * _price(
                prices.asr_second, e.get("asr") or "local"
            )
        elif kind == "tts":
            parts["tts"] += (
                int(e.get("chars") or 0) / 1000 * _price(prices.tts_1k_chars, str(e.get("voice", "")))
            )
        elif kind == "llm_usage":
            model = str(e.get("model", ""))
            parts["llm"] += int(e.get("tokens_in") or 0) / 1000 * _price(prices.llm_1k_tokens_in, model)
            parts["llm"] += int(e.get("tokens_out") or 0) / 1000 * _price(prices.llm_1k_tokens_out, model)
        elif kind == "transfer_result" and e.get("ok"):
            parts["transfer"] += float(prices.transfer)
    out = {k: round(v, 6) for k, v in parts.items()}
    out["total"] = round(sum(parts.values()), 6)
    return out
