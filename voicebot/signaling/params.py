"""Explicit parameters of one UA worker process, written by the supervisor as a 0600 JSON file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from voicebot.callworker.params import CallWorkerParams


class TrunkParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    allow: list[str]
    registrar: str | None = None
    username: str | None = None
    password: str | None = None  # plain here: the file is 0600 and never logged
    realm: str = "*"
    register_expires_s: int = 300
    codecs: list[str] = Field(default_factory=lambda: ["PCMU", "PCMA", "G722"])
    srtp: str = "off"
    dial: str | None = None  # outbound calls: "sip:{number}@host:port" (voicebot/outbound)
    caller_id: str = ""  # the From user of outbound calls


class UAParams(BaseModel):
    """Everything one UA worker needs; nothing is read from global settings inside the worker."""

    model_config = ConfigDict(extra="forbid")

    index: int = 0
    node: str = ""  # this node's id (cluster.node_id), written into the calls' records
    listen: str = "0.0.0.0"
    advertise: str = "127.0.0.1"
    port: int = 5060
    transports: list[str] = Field(default_factory=lambda: ["udp", "tcp"])
    tls_port: int = 5061
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    media_listen: str = "0.0.0.0"
    media_advertise: str = "127.0.0.1"  # address in SDP: RTP flows caller <-> UA worker directly
    rtp_port_start: int = 20000
    rtp_port_range: int = 400
    behind_edge: bool = False
    edge_sources: list[str] = Field(default_factory=list)  # CIDRs of the edge when behind_edge
    trunks: list[TrunkParams] = Field(default_factory=list)
    queues: dict[str, str] = Field(default_factory=dict)
    routes: list[tuple[str, str]] = Field(default_factory=lambda: [("*", "dialplans/example.yaml")])
    max_calls: int = 4
    pool_size: int = 4
    spare_workers: int = 1  # ready even when every call slot is taken: a dead worker's call resumes at once
    fork_server: bool = False  # fork call workers from a pre-imported parent (workers.fork_server)
    sample_rate: int = 8000
    rtp_timeout_s: float = 30.0
    drain_timeout_s: float = 30.0
    outbound: bool = False  # place the calls the node's dialer queues in run_dir/outbound
    # Behind this node's edge placed calls go out through it ("sip:127.0.0.1:5060;lr"; "" = direct).
    outbound_proxy: str = ""
    answer_wait_s: float = 3.0  # how long an INVITE may ring while waiting for a free call worker
    user_agent: str = "voicebot"
    call_worker: CallWorkerParams
    run_dir: Path = Path("var/run")
    log_level: str = "info"
    log_format: str = "console"
    redact_pii: bool = False
