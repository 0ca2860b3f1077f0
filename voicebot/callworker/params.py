"""Parameters of a per-call worker process (written once by the supervisor, read at worker start)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from voicebot.inference.providers import ProviderConfig
from voicebot.jobs.settings import JobSettings
from voicebot.llm.client import LlmConfig
from voicebot.media.prompts import Prompts
from voicebot.outbound.settings import OutboundSettings


class CallWorkerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    greeting: str = "Hello, this is voicebot."
    transfer_digits: dict[str, str] = Field(default_factory=dict)
    hangup_digit: str = "#"
    barge_in: bool = True
    call_logic: Literal["dialplan", "builtin"] = "dialplan"
    dialplan_store: Path | None = None
    tools_allow: list[str] = Field(default_factory=list)  # base URLs dialplan tools may call
    otlp_endpoint: str = ""  # tracing: export each call's spans here (voicebot/tracing.py)
    trace_service: str = "voicebot"
    llm: LlmConfig = Field(default_factory=LlmConfig)  # agent steps
    # spoken word -> queue name (the UA worker still maps the queue to a URI from the admin allowlist)
    speech_keywords: dict[str, str] = Field(default_factory=dict)
    asr_backend: str | None = None  # None: keys only
    model_dir: Path = Path("var/models")
    vosk_model: str = ""  # vosk: a model directory ("" = the bundled Korean model)
    asr_threads: int = 1
    whisper_window_s: float = 5.0
    asr_inject_failures: float = 0.0  # fault drills: this share of decodes fails
    # Speech through services (voicebot/inference): non-empty chains replace the in-process models
    # (asr_backend and tts_backend then name what the service is asked for, and key the prompt cache).
    asr_providers: list[ProviderConfig] = Field(default_factory=list)
    tts_providers: list[ProviderConfig] = Field(default_factory=list)
    breaker_dir: Path | None = None  # circuit state shared by the node's call workers
    prompt_dir: Path = Path("var/prompts")
    tts_backend: str = "hibari"
    tts_fallback: str | None = "espeak"
    tts_options: dict[str, dict[str, Any]] = Field(default_factory=dict)  # backend -> constructor options
    # Load the TTS before saying ready: set when a routed plan says uncached things (LLM replies,
    # texts with placeholders); otherwise every prompt comes from the cache and no model is loaded.
    warm_tts: bool = False
    record_dir: Path | None = None
    database_url: str = ""  # where finished calls are kept ("" = nowhere)
    spool_dir: Path | None = None  # where a record waits while the database cannot take it
    jobs: JobSettings = Field(default_factory=JobSettings)  # post-call jobs queued with each record
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)  # callback steps book calls
    dial_trunks: list[str] = Field(default_factory=list)  # trunks that can place them (first: default)
    sample_rate: int = 8000
    max_call_s: float = 3600.0
    log_level: str = "info"
    log_format: str = "console"
    redact_pii: bool = False

    def prompts(
        self, voice: str | None = None, sample_rate: int | None = None, local: bool = False
    ) -> Prompts:
        """The configured speech synthesis and prompt cache, in ``voice`` (None: the backend's);
        through the TTS providers when there are any, unless ``local`` (the supervisor's warm-up)."""
        service = None
        if self.tts_providers and not local:
            service = {
                "providers": [p.model_dump() for p in self.tts_providers],
                "breaker_dir": self.breaker_dir,
            }
        return Prompts(
            self.prompt_dir,
            sample_rate or self.sample_rate,
            self.tts_backend,
            self.tts_fallback,
            voice,
            self.tts_options,
            service,
        )
