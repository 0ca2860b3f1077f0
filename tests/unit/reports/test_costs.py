"""A call's cost from its events and the prices in settings."""

from __future__ import annotations

import pytest

from voicebot.config import CostSettings
from voicebot.reports import summary
from voicebot.reports.costs import call_cost
from voicebot.reports.summary import CallRow

PRICES = CostSettings(
    trunk_minute={"carrier": 0.01, "*": 0.002},
    asr_second={"cloud": 0.001, "local": 0.0},
    tts_1k_chars={"*": 0.02},
    llm_1k_tokens_in={"openai/big": 0.5, "*": 0.0},
    llm_1k_tokens_out={"openai/big": 2.0},
    transfer=0.05,
)
EVENTS = [
    {"kind": "transcript", "text": "sales", "audio_s": 2.5, "asr": "cloud"},
    {"kind": "transcript", "text": "yes", "audio_s": 1.0, "asr": "local"},
    {"kind": "transcript", "text": "x", "audio_s": 4.0, "asr": ""},  # in-process models: local
    {"kind": "tts", "voice": "hibari", "chars": 500},
    {"kind": "llm_usage", "model": "openai/big", "tokens_in": 200, "tokens_out": 10},  # a fallback
    {"kind": "llm_usage", "model": "openai/local", "tokens_in": 900, "tokens_out": 90},  # "*": free
    {"kind": "transfer_result", "queue": "sales", "ok": False},
    {"kind": "transfer_result", "queue": "sales", "ok": True},
]


def test_each_part_is_priced_by_its_key_or_the_star() -> None:
    cost = call_cost("carrier", 61.0, EVENTS, PRICES)  # 61 s: two started minutes
    assert cost == {
        "trunk": 0.02,
        "asr": 0.0025,
        "tts": 0.01,
        "llm": 0.12,  # 0.2 x 0.5 + 0.01 x 2.0
        "transfer": 0.05,
        "total": pytest.approx(0.2025),
    }
    assert call_cost("pbx", 30.0, [], PRICES)["trunk"] == 0.002  # "*" prices the other trunks
    assert call_cost("pbx", 30.0, EVENTS, CostSettings())["total"] == 0.0  # no prices, no cost


def test_negative_prices_are_refused() -> None:
    with pytest.raises(ValueError, match="negative price for carrier"):
        CostSettings(trunk_minute={"carrier": -1.0})


def test_the_report_sums_costs_and_divides_by_completed_outcomes() -> None:
    rows = [
        CallRow("p.yaml", "1-a", "completed", "completed", cost={"trunk": 0.02, "asr": 0.01, "total": 0.03}),
        CallRow("p.yaml", "1-a", "abandoned", "user_disconnection", cost={"trunk": 0.01, "total": 0.01}),
    ]
    cost = summary.summarise(rows)["total"]["cost"]
    assert cost["total"] == 0.04 and cost["per_call"] == 0.02
    assert cost["per_completed"] == 0.04  # the abandoned call's cost is carried by the completed one
    assert cost["parts"] == {"asr": 0.01, "trunk": 0.03}
    assert cost["by_outcome"] == {"abandoned": 0.01, "completed": 0.03}
    text = summary.render(summary.summarise(rows), "the last 1h", "EUR")
    assert "cost 0.0400 EUR: 0.0200 per call, 0.0400 per completed outcome (asr 0.0100, trunk 0.0300)" in text
