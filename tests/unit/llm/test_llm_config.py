"""The LLM settings: the local model, and providers in order."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from voicebot.llm.client import LlmConfig, LlmProvider


def test_llm_local_resolves_to_the_nodes_own_server_and_refuses_a_second_model() -> None:
    local = LlmConfig(local=True, local_listen="127.0.0.1:18123")
    assert local.configured and not LlmConfig().configured
    resolved = local.resolved()
    assert (resolved.model, resolved.api_base, resolved.local) == (
        "openai/smollm2-135m-instruct",
        "http://127.0.0.1:18123/v1",
        False,
    )
    with pytest.raises(ValidationError, match=r"leave llm\.model and llm\.api_base empty"):
        LlmConfig(local=True, model="openai/x")
    with pytest.raises(ValidationError):
        LlmConfig(local=True, local_listen="0.0.0.0:18080")  # the model server is never on the network


def test_providers_are_the_primary_then_the_fallbacks() -> None:
    cfg = LlmConfig(model="openai/a", api_base="http://a/v1", fallbacks=[LlmProvider(model="openai/b")])
    assert [p.model for p in cfg.providers()] == ["openai/a", "openai/b"]
