"""The settings file is admin YAML: problems are reported with file:line:column, typos are errors,
and `voicebot config check` shows what is in effect without showing secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from voicebot.config import load_settings
from voicebot.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("VOICEBOT_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "voicebot.yaml"
    path.write_text(text)
    return path


def test_a_bad_value_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "sip:\n  listen: 0.0.0.0\n  port: 99999\n")
    with pytest.raises(
        ConfigError, match=rf"{path}:3:3: sip\.port: Input should be less than or equal to 65535"
    ):
        load_settings(path)


def test_a_misspelt_key_in_a_group_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    path = write(tmp_path, "workers:\n  ua_worker: 3\n")
    with pytest.raises(ConfigError, match=rf"{path}:2:3: workers\.ua_worker: Extra inputs are not permitted"):
        load_settings(path)


def test_duplicate_keys_python_tags_and_syntax_errors_are_refused_with_positions(tmp_path: Path) -> None:
    cases = {
        "sip:\n  port: 5070\n  port: 5080\n": r":3:3: error: duplicate key 'port'",
        "run_dir: !!python/object/apply:os.system [id]\n": r":1:10: error: .*tag",
        "sip: [unclosed\n": r":2:1: error: YAML syntax",
        "- just\n- a list\n": r":1:1: a settings file is a mapping",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_settings(write(tmp_path, text))


def test_the_environment_wins_and_its_errors_carry_no_file_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "sip:\n  port: 5070\n")
    monkeypatch.setenv("VOICEBOT_SIP__PORT", "5090")
    assert load_settings(path).sip.port == 5090
    monkeypatch.setenv("VOICEBOT_SIP__PORT", "0")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value) == "invalid configuration: sip.port: Input should be greater than or equal to 1"
    monkeypatch.delenv("VOICEBOT_SIP__PORT")
    monkeypatch.setenv("VOICEBOT_CONFIG", str(path))
    assert load_settings().sip.port == 5070  # VOICEBOT_CONFIG names the file when --config does not


def test_config_check_prints_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sip:\n  advertise: 192.0.2.1\n"
        "trunks:\n  - name: carrier\n    allow: [198.51.100.0/28]\n"
        "    registrar: sip:sip.carrier.example\n    username: '4420'\n    password: hunter2-secret\n"
        "database:\n  url: postgresql+asyncpg://voicebot:db-secret@db.example/voicebot\n",
    )
    run = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "VOICEBOT_WORKERS__UA_WORKERS": "3"},
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "hunter2-secret" not in out and "db-secret" not in out
    assert "password: '**********'" in out and "voicebot:***@db.example" in out
    assert "ua_workers: 3" in out and "advertise: 192.0.2.1" in out  # environment and file merged
    assert "configuration OK" in run.stderr


def test_config_check_fails_with_one_line_that_says_where(tmp_path: Path) -> None:
    path = write(tmp_path, "log:\n  format: xml\n")
    run = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 2
    where = f"{path}:2:3: log.format"
    assert run.stderr.strip().splitlines() == [
        f"voicebot: error: invalid configuration: {where}: Input should be 'console' or 'json'"
    ]


def test_db_and_dialplan_version_commands_take_their_places_from_the_settings(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[3]
    db, store = tmp_path / "calls.db", tmp_path / "published"
    path = write(tmp_path, f"database:\n  url: sqlite+aiosqlite:///{db}\ndialplan_store: {store}\n")

    def voicebot(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "voicebot.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,  # nothing may land in the working directory's var/
            env={"PATH": "/usr/bin:/bin", **env},
        )

    run = voicebot("db", "upgrade", "--config", str(path))
    assert run.returncode == 0 and db.is_file(), run.stderr
    run = voicebot("dialplan", "publish", str(repo / "dialplans" / "example.yaml"), "--config", str(path))
    assert run.returncode == 0, run.stderr
    plan_id = run.stdout.split()[0]
    # VOICEBOT_CONFIG serves as well as --config
    run = voicebot("dialplan", "status", plan_id, VOICEBOT_CONFIG=str(path))
    assert run.returncode == 0 and '"live"' in run.stdout, run.stdout + run.stderr
    assert store.is_dir() and not (tmp_path / "var").exists()


def test_outbound_settings_that_cannot_work_stop_the_start_with_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"outbound\.enabled needs a trunk that can place calls"):
        load_settings(write(tmp_path, "outbound:\n  enabled: true\n"))
    trunk = "trunks:\n  - name: c\n    allow: [127.0.0.1]\n    dial: 'sip:{number}@127.0.0.1:5099'\n"
    short_lease = trunk + "outbound:\n  enabled: true\n  ring_timeout_s: 60\njobs:\n  lease_s: 60\n"
    with pytest.raises(ConfigError, match=r"jobs\.lease_s must be at least 119 s"):
        load_settings(write(tmp_path, short_lease))
    with pytest.raises(ConfigError, match=r"calling_hours must start before they end"):
        load_settings(write(tmp_path, trunk + "outbound:\n  enabled: true\n  calling_hours: '21:00-08:00'\n"))
