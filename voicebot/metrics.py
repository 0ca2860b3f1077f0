"""Prometheus metrics, summed over the processes that make up one voicebot.

UA workers are long-lived, so they do the observing: each per-call worker sends its turn records to
its UA worker over IPC. prometheus_client's multiprocess mode keeps every process's values in files
under ``PROMETHEUS_MULTIPROC_DIR``; the supervisor sets that directory (emptied at start) before it
starts any worker, and serves ``/metrics`` summed over all of them. A process without the variable
(a unit test) keeps its values in memory.
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicebot.engine.turns import STAGES
from voicebot.logs import get_logger

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

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


def serve(listen: str) -> Any:
    """Serve /metrics on ``host:port`` (summing every process's files); None when it cannot bind."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry()
    if ENV in os.environ:
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    try:
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    except OSError as exc:
        log.error("metrics.unavailable", listen=listen, error=str(exc))  # calls go on without them
        return None
    log.info("metrics.listening", listen=listen)
    return server
