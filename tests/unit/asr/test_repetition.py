"""Repetition loops: told apart from speech (pure), and gone from real decodes of short prompts."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from voicebot.asr import repetition
from voicebot.asr.base import create

PROMPTS = Path(__file__).resolve().parents[2] / "data" / "audio" / "short_prompts"
LOOP = "Can you repeat that please? Can you repeat that please? Can you repeat that please?"


def test_a_loop_is_told_from_speech() -> None:
    assert repetition.looped(LOOP, 3.0)
    assert not repetition.looped("Can you repeat that please?", 3.0)
    assert not repetition.looped("Agent. Agent. Let me talk to a real person.", 3.5)  # short repeats
    assert not repetition.looped("no no no no", 1.0)  # too few words to judge
    # far more words than anybody says in the audio, even without a phrase repeated back to back
    assert repetition.looped(" ".join(f"w{i}" for i in range(40)), 3.0)
    assert not repetition.looped(" ".join(f"w{i}" for i in range(40)), 12.0)


def test_collapse_keeps_the_phrase_once_and_drops_what_followed_the_loop() -> None:
    assert repetition.collapse(LOOP) == "Can you repeat that please?"
    assert repetition.collapse(
        "Hi. I have a question about billing. I have a question about billing. I have a"
    ) == ("Hi. I have a question about billing.")
    assert repetition.collapse("nothing repeated here at all") == "nothing repeated here at all"


def test_compression_ratio_separates_language_from_loops() -> None:
    assert repetition.compression_ratio(LOOP * 3) > repetition.MAX_COMPRESSION_RATIO
    assert repetition.compression_ratio("I would like to speak to someone in sales please.") < 1.5


def _prompts() -> list[tuple[str, str]]:
    rows = (PROMPTS / "TRANSCRIPTS.tsv").read_text().splitlines()
    return [tuple(r.split("\t", 1)) for r in rows if r]  # type: ignore[misc]


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return create("faster-whisper", model_dir=tmp_path_factory.mktemp("models") / "whisper-base")


@pytest.mark.parametrize(("name", "said"), _prompts(), ids=lambda v: v[:16])
def test_short_prompts_that_used_to_loop_come_back_once(whisper, name: str, said: str) -> None:  # type: ignore[no-untyped-def]
    """Each of these made Whisper repeat the sentence to its token cap before the fix."""
    with wave.open(str(PROMPTS / name)) as w:
        result = whisper.transcribe(w.readframes(w.getnframes()), w.getframerate())
    words = repetition.words(result.text)
    assert not repetition.looped(result.text, result.audio_s), result.text
    assert len(words) <= len(repetition.words(said)) + 2, result.text
