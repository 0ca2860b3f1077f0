"""Prometheus metrics, summed over the processes that make up one voicebot.

UA workers are long-lived, so they do the observing: each per-call worker sends its turn records to
its UA worker over IPC. prometheus_client's multiprocess mode keeps every process's values in files
under ``PROMETHEUS_MULTIPROC_DIR``; the supervisor sets that directory (emptied at start) before it
starts any worker, and serves ``/metrics`` summed over all of them. A process without the variable
(a unit test) keeps its values in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from voicebot.engine.turns import STAGES
from voicebot.logs import get_logger

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

log = get_logger(__name__)
ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds after the caller stopped speaking: fine steps around the 0.2 s barge-in and 0.9 s turn targets.
TURN_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0)


def use_dir(path: Path) -> None:
    """Supervisor, before any worker starts: a fresh directory for every process's values."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[ENV] = str(path)


@cache
def _turn_stage() -> Histogram:
    from prometheus_client import Histogram

    return Histogram(
        "voicebot_turn_stage_seconds",
        "Time from the end of the caller's speech to each stage of the bot's reply",
        ["stage"],
        buckets=TURN_BUCKETS,
    )


@cache
def _greeting() -> Histogram:
    from prometheus_client import Histogram

    return Histogram(
        "voicebot_greeting_first_audio_seconds",
        "Time from answering a call to the greeting's first audio on the wire",
        buckets=TURN_BUCKETS,
    )


@cache
def _calls() -> Counter:
    from prometheus_client import Counter

    return Counter("voicebot_calls", "Calls that ended, by how", ["ended_by"])


@cache
def _gaps() -> Counter:
    from prometheus_client import Counter

    return Counter(
        "voicebot_playout_gap_frames",
        "20 ms frames of silence sent in the middle of a prompt (bot audio not ready in time)",
    )


@cache
def _replaced() -> Counter:
    from prometheus_client import Counter

    return Counter(
        "voicebot_call_worker_replacements",
        "Call workers that died or stopped answering mid-call and were replaced (the call went on)",
    )


@cache
def _load() -> tuple[Gauge, Gauge, Gauge]:
    from prometheus_client import Gauge

    # livesum: summed over the UA workers alive now (a dead one's last values do not count)
    return (
        Gauge("voicebot_calls_active", "Calls in progress", multiprocess_mode="livesum"),
        Gauge("voicebot_call_slots_free", "Calls that could be taken now", multiprocess_mode="livesum"),
        Gauge(
            "voicebot_call_workers_idle",
            "Per-call worker processes started and waiting for a call",
            multiprocess_mode="livesum",
        ),
    )


@cache
def _rejected() -> Counter:
    from prometheus_client import Counter

    return Counter("voicebot_calls_rejected", "INVITEs a UA worker refused, by SIP status", ["code"])


@cache
def _restarts() -> Counter:
    from prometheus_client import Counter

    return Counter("voicebot_ua_worker_restarts", "UA workers that died or were killed and started again")


@cache
def _infer() -> tuple[Gauge, Histogram, Histogram, Counter]:
    from prometheus_client import Counter, Gauge, Histogram

    return (
        Gauge(
            "voicebot_infer_queue_depth",
            "Decodes waiting in the inference service",
            multiprocess_mode="livesum",
        ),
        Histogram(
            "voicebot_infer_batch_size",
            "Turns decoded together in one batch",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16),
        ),
        Histogram(
            "voicebot_infer_queue_wait_seconds", "Time a decode waited for the decoder", buckets=TURN_BUCKETS
        ),
        Counter(
            "voicebot_infer_requests",
            "Inference requests by endpoint and outcome (ok, bad_request, overloaded, expired, failed)",
            ["endpoint", "outcome"],
        ),
    )


def infer_queue(depth: int) -> None:
    _infer()[0].set(depth)


def infer_batch(size: int, waits_s: list[float]) -> None:
    _, batch, wait, _ = _infer()
    batch.observe(size)
    for w in waits_s:
        wait.observe(w)


def infer_request(endpoint: str, outcome: str) -> None:
    _infer()[3].labels(endpoint=endpoint, outcome=outcome).inc()


def _registry() -> Any:
    """Every process's values when the multiprocess directory is set, else this process's own."""
    from prometheus_client import REGISTRY, CollectorRegistry

    if ENV not in os.environ:
        return REGISTRY
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def exposition() -> tuple[bytes, str]:
    """The metrics page (the speech service's /metrics)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(_registry()), CONTENT_TYPE_LATEST


@cache
def _records() -> tuple[Gauge, Counter]:
    from prometheus_client import Counter, Gauge

    return (
        Gauge(
            "voicebot_records_spooled",
            "Call records kept on local disk because the database could not take them",
            multiprocess_mode="livemax",
        ),
        Counter(
            "voicebot_jobs_finished", "Post-call jobs finished, by kind and outcome", ["kind", "outcome"]
        ),
    )


@cache
def _stage_errors() -> Counter:
    from prometheus_client import Counter

    return Counter(
        "voicebot_stage_errors",
        "Failures by stage (asr, tts, llm, tool, transfer); the call went on: reprompt, fallback, error path",
        ["stage"],
    )


def stage_failed(stage: str) -> None:
    _stage_errors().labels(stage=stage).inc()


def records_spooled(count: int) -> None:
    _records()[0].set(count)


def job_finished(kind: str, outcome: str) -> None:
    """outcome: done, retry (failed, will run again) or dead (failed for good: a dead letter)."""
    _records()[1].labels(kind=kind, outcome=outcome).inc()


def ua_load(active: int, free: int, idle_workers: int) -> None:
    """A UA worker's share of the node's load (its gauges are summed over the live UA workers)."""
    g_active, g_free, g_idle = _load()
    g_active.set(active)
    g_free.set(free)
    g_idle.set(idle_workers)


def call_rejected(code: int) -> None:
    _rejected().labels(code=str(code)).inc()


def ua_restarted() -> None:
    _restarts().inc()


def worker_replaced() -> None:
    _replaced().inc()


def observe_turn(record: dict[str, Any]) -> None:
    """One turn record from :mod:`voicebot.engine.turns` (milliseconds; missing stages skipped)."""
    if record.get("greeting_ms") is not None:
        _greeting().observe(record["greeting_ms"] / 1000)
        return
    for stage in STAGES:
        ms = record.get(f"{stage}_ms")
        if ms is not None:
            _turn_stage().labels(stage=stage).observe(ms / 1000)


def call_ended(ended_by: str) -> None:
    _calls().labels(ended_by=ended_by).inc()


def playout_gaps(frames: int) -> None:
    _gaps().inc(frames)


Probe = Callable[[], tuple[int, dict[str, Any]]]


def serve(listen: str, probes: dict[str, Probe] | None = None) -> Any:
    """Serve /metrics (summed over every process's files) and the ``probes`` (``/healthz``,
    ``/readyz``: JSON) on ``host:port`` from a thread; None when it cannot bind."""
    from prometheus_client import make_wsgi_app

    from voicebot.config import host_port

    host, port = host_port(listen)
    app = _with_probes(make_wsgi_app(_registry()), probes or {})
    try:
        server = _HttpServer.bind(host, port, app)
    except OSError as exc:
        log.error("metrics.unavailable", listen=listen, error=str(exc))  # calls go on without them
        return None
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    log.info("metrics.listening", listen=listen, probes=sorted(probes or {}))
    return server


def _with_probes(metrics_app: Any, probes: dict[str, Probe]) -> Any:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        name = str(environ.get("PATH_INFO", "")).strip("/")
        probe = probes.get(name)
        if probe is None:
            return list(metrics_app(environ, start_response))
        try:
            status, body = probe()
        except Exception as exc:  # a probe that fails says so; it never takes the server down
            status, body = 503, {"why": [f"probe failed: {type(exc).__name__}"]}
        data = (json.dumps(body) + "\n").encode()
        reason = "OK" if status == 200 else "Service Unavailable"
        start_response(
            f"{status} {reason}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [data]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a probe every second must not fill the log


class _HttpServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    @classmethod
    def bind(cls, host: str, port: int, app: Any) -> _HttpServer:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_cls = type("_Server", (cls,), {"address_family": family})
        server: _HttpServer = server_cls((host, port), _QuietHandler)
        server.set_app(app)
        return server
