"""Configuration that only shows when models are looked for: `voicebot run` says so and exits 2,
instead of starting call workers that crash one after another."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_wrong_vosk_model_path_stops_voicebot_run_with_a_clear_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "VOICEBOT_ASR__BACKEND": "vosk",
        "VOICEBOT_ASR__VOSK_MODEL": str(tmp_path / "no-such-model"),
        "VOICEBOT_RUN_DIR": str(tmp_path / "run"),
        "VOICEBOT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'voicebot.db'}",
        "VOICEBOT_TTS__BACKEND": "espeak",
    }
    run = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "run"], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"Vosk model directory {tmp_path / 'no-such-model'} does not exist" in run.stderr
    assert "Traceback" not in run.stderr and "ua.started" not in run.stdout + run.stderr
