"""A speech provider in a stage's chain (settings and call-worker parameters; pydantic only)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ProviderConfig(BaseModel):
    """One speech provider in a stage's chain (settings: inference.asr_providers / tts_providers)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    urls: list[str] = Field(min_length=1)  # base URLs (…/v1); several: replicas of one service
    model: str = "default"  # e.g. whisper-1, gpt-4o-mini-tts; voicebot's service: a backend name
    voice: str | None = None  # TTS: the provider's voice when the dialplan names none
    api_key_env: str | None = None  # the environment variable holding the key (never the key)
    timeout_s: float = Field(3.0, gt=0, le=60)  # per request
    voicebot: bool = False  # voicebot's own service: asks for the call's rate and sends deadlines
