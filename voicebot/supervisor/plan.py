"""Turn settings into explicit per-process parameters (pure: no processes, no files)."""

from __future__ import annotations

from pathlib import Path

from voicebot.callworker.params import CallWorkerParams
from voicebot.config import Settings, host_port
from voicebot.inference.providers import ProviderConfig
from voicebot.inference.server import InferParams
from voicebot.outbound.settings import DialTrunk
from voicebot.signaling.params import TrunkParams, UAParams

EDGE_SOURCES = ["127.0.0.0/8", "::1/128"]


def absolute_sqlite(url: str) -> str:
    """A relative SQLite path resolved against the current directory (workers may run elsewhere)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return parsed.set(database=str(Path(parsed.database).resolve())).render_as_string(hide_password=False)
    return url


def local_service_url(s: Settings) -> str:
    host, port = host_port(s.inference.listen)
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/v1"


def speech_chains(s: Settings) -> tuple[list[ProviderConfig], list[ProviderConfig]]:
    """(ASR, TTS) provider chains for call workers: the configured providers, then this node's
    service (local mode). Both empty in ``off`` mode: call workers load the models themselves."""
    inf = s.inference
    if inf.mode == "off":
        return [], []
    asr, tts = list(inf.asr_providers), list(inf.tts_providers)
    if inf.mode == "local":
        url = local_service_url(s)
        if s.asr.backend != "none":
            asr.append(
                ProviderConfig(
                    name="local", urls=[url], model=s.asr.backend, timeout_s=inf.timeout_s, voicebot=True
                )
            )
        # synthesis streams sentence by sentence: the timeout bounds the wait for each piece
        tts.append(
            ProviderConfig(
                name="local",
                urls=[url],
                model=s.tts.backend,
                timeout_s=max(inf.timeout_s, 10.0),
                voicebot=True,
            )
        )
    return asr, tts


def infer_params(s: Settings) -> InferParams:
    host, port = host_port(s.inference.listen)
    return InferParams(
        host=host,
        port=port,
        asr_backend=None if s.asr.backend == "none" else s.asr.backend,
        model_dir=s.asr.model_dir.resolve(),
        vosk_model=s.asr.vosk_model,
        threads=s.inference.threads,
        whisper_window_s=s.asr.whisper_window_s,
        batch_max=s.inference.batch_max,
        batch_wait_ms=s.inference.batch_wait_ms,
        max_queue=s.inference.max_queue,
        deadline_ms=s.inference.deadline_ms,
        tts_backend=s.tts.backend,
        tts_fallback=s.tts.fallback,
        tts_options=_tts_options(s),
        log_level=s.log.level,
        log_format=s.log.format,
        redact_pii=s.log.redact_pii,
        otlp_endpoint=s.tracing.otlp_endpoint,
        trace_service=f"{s.tracing.service_name}-speech",
    )


def _tts_options(s: Settings) -> dict[str, dict[str, object]]:
    return {
        name: {k: str(v) if isinstance(v, Path) else v for k, v in s.tts.options(name).items()}
        for name in {s.tts.backend, s.tts.fallback}
        if name
    }


def call_worker_params(s: Settings) -> CallWorkerParams:
    asr_chain, tts_chain = speech_chains(s)
    return CallWorkerParams(
        otlp_endpoint=s.tracing.otlp_endpoint,
        trace_service=s.tracing.service_name,
        greeting=s.call.greeting,
        transfer_digits=s.call.transfer_digits,
        speech_keywords=s.call.speech_keywords,
        call_logic=s.call.logic,
        dialplan_store=s.dialplan_store.resolve(),
        tools_allow=list(s.tools_allow),
        llm=s.llm.resolved(),
        asr_backend=None if s.asr.backend == "none" else s.asr.backend,
        model_dir=s.asr.model_dir.resolve(),
        vosk_model=s.asr.vosk_model,
        asr_threads=s.asr.threads,
        whisper_window_s=s.asr.whisper_window_s,
        asr_inject_failures=s.asr.inject_failures,
        asr_providers=asr_chain,
        tts_providers=tts_chain,
        breaker_dir=(s.run_dir / "breakers").resolve(),
        prompt_dir=s.run_dir / "prompts",
        tts_backend=s.tts.backend,
        tts_fallback=s.tts.fallback,
        tts_options=_tts_options(s),
        record_dir=s.call.record_dir,
        database_url=absolute_sqlite(s.database.url),
        spool_dir=(s.run_dir / "spool").resolve(),
        jobs=s.jobs,
        outbound=s.outbound,
        dial_trunks=[t.name for t in s.trunks if t.dial],
        sample_rate=8000,
        max_call_s=s.call.max_call_s,
        log_level=s.log.level,
        log_format=s.log.format,
        redact_pii=s.log.redact_pii,
    )


def trunk_params(s: Settings) -> list[TrunkParams]:
    """The UA workers' trunks; behind the edge they do not register (the edge does, once)."""
    return [
        TrunkParams(
            name=t.name,
            allow=t.allow,
            registrar=None if s.behind_edge else t.registrar,  # the edge registers
            username=t.username,
            password=t.password.get_secret_value() if t.password else None,
            realm=t.realm,
            register_expires_s=t.register_expires_s,
            codecs=list(t.codecs),
            srtp=t.srtp.value,
            dial=t.dial,
            caller_id=t.caller_id,
        )
        for t in s.trunks
    ]


def _edge_proxy(s: Settings) -> str:
    """This node's edge as the UA workers' outbound proxy (they listen on loopback behind it)."""
    host = "127.0.0.1" if s.sip.listen in ("0.0.0.0", "::", "") else s.sip.listen
    host = f"[{host}]" if ":" in host else host
    return f"sip:{host}:{s.sip.port};lr"


def dial_trunks(s: Settings) -> list[DialTrunk]:
    """The trunks that can place calls, as the node's dialer needs them (voicebot/outbound)."""
    return [
        DialTrunk(
            name=t.name,
            dial=t.dial,
            caller_id=t.caller_id,
            max_calls=t.max_outbound_calls,
            cps=t.outbound_cps,
        )
        for t in s.trunks
        if t.dial
    ]


def ua_params(s: Settings) -> list[UAParams]:
    """One UAParams per UA worker: behind this node's edge on loopback, behind a shared edge on this
    node's address (both on internal ports), or alone on the public port."""
    k = s.workers.ua_workers
    behind = s.behind_edge
    shared = s.cluster.role == "node"
    out = []
    for i in range(k):
        out.append(
            UAParams(
                index=i,
                node=s.node_id,
                listen=s.sip.listen if shared or not behind else "127.0.0.1",
                advertise=s.sip.advertise if shared or not behind else "127.0.0.1",
                port=s.workers.ua_base_port + i if behind else s.sip.port,
                transports=["udp"] if behind else list(s.sip.transports),
                media_listen=s.sip.listen,
                media_advertise=s.sip.advertise,
                tls_port=s.sip.tls.port,
                tls_cert=s.sip.tls.cert_file,
                tls_key=s.sip.tls.key_file,
                tls_ca=s.sip.tls.ca_file,
                rtp_port_start=s.sip.rtp_port_start + i * s.sip.rtp_ports_per_worker,
                rtp_port_range=s.sip.rtp_ports_per_worker,
                behind_edge=behind,
                edge_sources=list(s.cluster.edge_sources) if shared else EDGE_SOURCES if behind else [],
                trunks=trunk_params(s),
                queues=dict(s.queues),
                routes=[(r.match, str(r.dialplan.resolve())) for r in s.routes],
                max_calls=s.workers.calls_per_ua,
                pool_size=s.workers.call_pool_size,
                spare_workers=s.workers.spare_call_workers,
                fork_server=s.workers.fork_server,
                rtp_timeout_s=s.sip.rtp_timeout_s,
                drain_timeout_s=s.workers.drain_timeout_s,
                user_agent=s.sip.user_agent,
                outbound=s.outbound.enabled,
                outbound_proxy=_edge_proxy(s) if behind and not shared else "",
                call_worker=call_worker_params(s),
                run_dir=s.run_dir,
                log_level=s.log.level,
                log_format=s.log.format,
                redact_pii=s.log.redact_pii,
            )
        )
    return out
