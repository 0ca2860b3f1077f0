"""The circuit breaker the node's call workers share through files (pure logic, a fake clock)."""

from __future__ import annotations

from pathlib import Path

from voicebot.inference.breaker import MAX_OPEN_S, SharedBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_workers_failure_opens_the_circuit_for_every_worker(tmp_path: Path) -> None:
    clock = Clock()
    a = SharedBreaker(tmp_path, "cloud-https://x/v1", clock, open_s=5)
    b = SharedBreaker(tmp_path, "cloud-https://x/v1", clock, open_s=5)  # another call worker
    assert a.allow() and b.allow()
    a.failure()
    assert not b.allow() and b.is_open()
    clock.now += 5.1
    assert b.allow()  # half-open: b's request is the probe ...
    assert not a.allow()  # ... and the others keep skipping it meanwhile
    b.success()
    assert a.allow() and not a.is_open()


def test_repeated_failures_back_off_up_to_a_minute(tmp_path: Path) -> None:
    clock = Clock()
    br = SharedBreaker(tmp_path, "p", clock, open_s=5)
    for _ in range(10):
        br.failure()
    until = float((tmp_path / "p").read_text().split()[0])
    assert until - clock.now == MAX_OPEN_S


def test_garbage_in_the_state_file_reads_as_closed(tmp_path: Path) -> None:
    br = SharedBreaker(tmp_path, "p")
    (tmp_path / "p").write_text("not numbers")
    assert br.allow()


def test_without_a_directory_the_state_is_the_process_own() -> None:
    clock = Clock()
    br = SharedBreaker(None, "p", clock)
    br.failure()
    assert not br.allow()
    clock.now += 100
    assert br.allow()
    br.success()
    assert not br.is_open()


def test_names_become_safe_file_names(tmp_path: Path) -> None:
    br = SharedBreaker(tmp_path, "local-http://127.0.0.1:9470/v1")
    br.failure()
    assert [p.name for p in tmp_path.iterdir()] == ["local-http_127.0.0.1_9470_v1"]
