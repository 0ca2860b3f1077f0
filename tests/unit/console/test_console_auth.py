"""The console's pure pieces: passwords, roles, the login limit, session lifetimes, live rows, SVG."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from voicebot.config import ConsoleSettings
from voicebot.console import auth, live, plots


def test_passwords_are_salted_and_checked_in_constant_form() -> None:
    a, b = auth.hash_password("correct horse"), auth.hash_password("correct horse")
    assert a != b  # salted
    assert auth.verify_password("correct horse", a) and not auth.verify_password("correct horsE", a)
    assert not auth.verify_password("x", "md5$whatever") and not auth.verify_password("x", "garbage")
    with pytest.raises(auth.PasswordError):
        auth.check_new_password("short", "bob")
    with pytest.raises(auth.PasswordError):
        auth.check_new_password("Alice-Admin", "alice-admin")


def test_roles() -> None:
    assert auth.can("admin", "versions") and auth.can("admin", "transcripts") and auth.can("admin", "audit")
    assert auth.can("analyst", "transcripts") and not auth.can("analyst", "versions")
    assert auth.can("viewer", "read") and not auth.can("viewer", "transcripts")
    assert not auth.can("viewer", "versions") and not auth.can("root", "read")


def test_login_limit_per_address_and_per_name() -> None:
    limit = auth.LoginLimiter(failures=3, window_s=60)
    keys = ["addr:10.0.0.1", "user:alice"]
    for t in range(3):
        assert limit.wait_s(keys, t) == 0
        limit.failed(keys, t)
    assert limit.wait_s(keys, 3) == pytest.approx(57)
    # another address guessing the same name is refused too; the first address on another name too
    assert limit.wait_s(["addr:10.0.0.2", "user:alice"], 3) > 0
    assert limit.wait_s(["addr:10.0.0.1", "user:bob"], 3) > 0
    assert limit.wait_s(["addr:10.0.0.2", "user:bob"], 3) == 0
    assert limit.wait_s(keys, 60) == 0  # the window has passed
    # a right password clears the name's tally, not the address's
    limit.failed(keys, 100)
    limit.failed(keys, 101)
    limit.succeeded("user:alice")
    limit.failed(keys, 102)
    assert limit.wait_s(["addr:10.0.0.1"], 103) > 0 and limit.wait_s(["user:alice"], 103) == 0


def test_login_limit_memory_is_bounded() -> None:
    limit = auth.LoginLimiter(failures=1, window_s=60)
    limit.MAX_KEYS = 100
    for i in range(1000):
        limit.failed([f"addr:{i}"], 0)
    assert len(limit._tallies) == 100


def test_sessions_end_when_idle_or_old() -> None:
    assert auth.session_alive(created=0, seen=100, now=200, idle_s=300, max_s=1000)
    assert not auth.session_alive(created=0, seen=100, now=401, idle_s=300, max_s=1000)
    assert not auth.session_alive(created=0, seen=990, now=1001, idle_s=300, max_s=1000)


def test_an_open_console_without_tls_is_refused_with_what_to_set() -> None:
    ConsoleSettings(listen="127.0.0.1:8089")
    ConsoleSettings(listen="[::1]:8089")
    ConsoleSettings(listen="0.0.0.0:8089", behind_https_proxy=True)
    ConsoleSettings(listen="0.0.0.0:8089", tls_cert=Path("c.pem"), tls_key=Path("k.pem"))
    with pytest.raises(ValueError, match=r"set console\.tls_cert and console\.tls_key"):
        ConsoleSettings(listen="0.0.0.0:8089")
    with pytest.raises(ValueError, match="go together"):
        ConsoleSettings(listen="127.0.0.1:8089", tls_cert=Path("c.pem"))


def test_live_files_of_dead_writers_are_ignored(tmp_path: Path) -> None:
    writer = live.LiveFile(tmp_path / "live" / "ua-0.json", 0)
    call = {"call_id": "abc", "caller": "+15551234567", "state": "talking", "started": 100.0}
    writer.update([call])
    dead = tmp_path / "live" / "ua-1.json"
    dead.write_text(json.dumps({"pid": 2**22 + 12345, "ua": 1, "calls": [call | {"call_id": "old"}]}))
    (tmp_path / "live" / "ua-2.json").write_text("{half a fi")
    # no pid: kill(0) would ask about our own process group and call it alive
    (tmp_path / "live" / "ua-3.json").write_text(
        json.dumps({"ua": 3, "calls": [call | {"call_id": "nopid"}]})
    )
    assert [c["call_id"] for c in live.read(tmp_path)] == ["abc"]
    assert live.read(tmp_path)[0]["ua"] == 0
    rows = live.rows(live.read(tmp_path), now=130.0, show_numbers=False)
    assert rows[0]["caller"].endswith("67") and "555" not in rows[0]["caller"] and rows[0]["age_s"] == 30.0
    assert live.rows(live.read(tmp_path), 130.0, True)[0]["caller"] == "+15551234567"
    mtime = os.stat(writer.path).st_mtime_ns
    writer.update([call])  # unchanged: not written again
    assert os.stat(writer.path).st_mtime_ns == mtime
    assert live.leg_state(answered=False, outbound=True, transferring=False, ended=False) == "dialling"
    assert live.leg_state(True, False, True, False) == "transferring"


def test_plots_escape_labels() -> None:
    svg = plots.counts([("<script>x</script>", 3)])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    turn = {"asr_final_ms": 300, "decision_ms": 320, "tts_first_audio_ms": 500, "reply_out_ms": 520}
    assert svg and plots.waterfall(turn).count("<rect") == 4
    assert plots.waterfall({"turn": 1}) == ""
    stages = {"asr_final": {"p50": 100.0, "p95": 200.0, "p99": 250.0, "n": 9}}
    assert plots.percentiles(stages).count("<rect") == 3 + 3  # three bars and three legend keys
