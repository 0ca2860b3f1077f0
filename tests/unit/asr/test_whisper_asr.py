"""The real Whisper base model (from its two wheels) on the test recordings."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from voicebot.asr.base import create
from voicebot.asr.whisper import WhisperAsr, assemble_model, window_frames
from voicebot.errors import ConfigError

AUDIO = Path(__file__).resolve().parents[2] / "data" / "audio"


@pytest.fixture(scope="module")
def asr(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return create("faster-whisper", model_dir=tmp_path_factory.mktemp("models") / "whisper-base")


REFERENCE = (
    "Hello? Hello? Can you hear me? I have been waiting for a very long time and I want to cancel "
    "my subscription today."
)


def words(text: str) -> list[str]:
    return [w.strip(',.?!"') for w in text.lower().replace("i've", "i have").split()]


def edits(a: list[str], b: list[str]) -> int:
    """Word edit distance."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def per_turn(decode):  # type: ignore[no-untyped-def]
    """A scripted one-turn decoder as the batch decoder (audio, prompt text, window) -> result."""
    return lambda audios, prompts, window=None: [
        decode(a, p, window) for a, p in zip(audios, prompts, strict=True)
    ]


def pcm_of(name: str) -> tuple[bytes, int]:
    with wave.open(str(AUDIO / name)) as w:
        return w.readframes(w.getnframes()), w.getframerate()


def test_transcribes_a_phone_rate_request(asr) -> None:  # type: ignore[no-untyped-def]
    pcm, rate = pcm_of("barge_in_long_8k_s16.wav")
    result = asr.transcribe(pcm, rate)
    text = result.text.lower()
    assert "cancel my subscription" in text
    # int8 arithmetic differs by CPU: on an AVX2-only EPYC "waiting" came out "waving"
    assert edits(words(text), words(REFERENCE)) <= 2
    assert 0.5 < result.confidence <= 1.0
    assert 8.5 < result.audio_s < 9.5
    # Known limit, kept visible: espeak's "sales please" (transfer_sales_8k) decodes as "pale clean";
    # synthetic voices are no substitute for real speech, and intent matching must be fuzzy.


def test_silence_gives_no_words(asr) -> None:  # type: ignore[no-untyped-def]
    result = asr.transcribe(b"\x00\x00" * 8000, 8000)
    assert len(result.text.split()) <= 2  # whisper may hallucinate a filler on silence, never a request


def test_model_is_assembled_once(tmp_path: Path) -> None:
    target = assemble_model(tmp_path / "m")
    size = (target / "model.bin").stat().st_size
    assert size > 140_000_000 and (target / "tokenizer.json").is_file()
    assert assemble_model(tmp_path / "m") == target and (target / "model.bin").stat().st_size == size


def test_unknown_backend() -> None:
    with pytest.raises(ConfigError, match="faster-whisper"):
        create("vosk-typo")


def test_the_encoder_window_follows_the_speech() -> None:
    assert window_frames(100) == 500  # the default shortest window: 5 s
    assert window_frames(331) == 750  # 3.3 s of audio: + 2 s, in 2.5 s steps
    assert window_frames(890) == 1250
    assert window_frames(331, minimum=2500) == 2500  # a longer shortest window by configuration
    assert window_frames(2800) == window_frames(9999) == 3000  # never more than Whisper's 30 s


def test_a_short_window_hears_the_same_words_as_the_full_one(asr, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """The default window (silence after the speech) decodes this request to the same words as
    Whisper's own 30 s (bench/asr_window.py measures it at many cut points); with the step's options
    as a prompt the request is still whole (the repeated "hello" may go)."""
    pcm, rate = pcm_of("barge_in_long_8k_s16.wav")
    full = WhisperAsr(tmp_path_factory.mktemp("m") / "whisper-base", min_window_s=30).transcribe(pcm, rate)
    short = asr.transcribe(pcm, rate)
    hinted = asr.transcribe(pcm, rate, ["cancel", "billing", "support"])
    assert "i want to cancel my subscription today" in hinted.text.lower()

    # the same words, give or take one (int8 arithmetic differs by CPU: AVX2 vs AVX-512)
    assert edits(words(short.text), words(full.text)) <= 1, (short.text, full.text)


def test_a_decode_with_far_too_few_words_is_repeated_in_the_full_window(asr, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The guard against an early stop: "I" for 8.9 s of speech is decoded again in Whisper's 30 s
    window, and that answer is the one returned (the model's decoding is replaced by a script here:
    no real input makes Whisper stop that early since the window is filled with silence)."""
    from voicebot.asr import whisper

    pcm, rate = pcm_of("barge_in_long_8k_s16.wav")
    windows: list[int] = []

    def scripted(audio, hints, min_window):  # type: ignore[no-untyped-def]
        windows.append(min_window)
        if min_window < whisper.FULL_WINDOW_FRAMES:
            return "I", -0.2, 0.01
        return "I want to cancel my subscription today", -0.1, 0.01

    monkeypatch.setattr(asr, "_decode_many", per_turn(scripted))
    result = asr.transcribe(pcm, rate)
    assert windows == [whisper.MIN_WINDOW_FRAMES, whisper.FULL_WINDOW_FRAMES]
    assert result.text == "I want to cancel my subscription today"
    windows.clear()

    def wordy(audio, hints, min_window):  # type: ignore[no-untyped-def]
        windows.append(min_window)
        return "Hello, can you hear me? I want to cancel my subscription.", -0.1, 0.0

    monkeypatch.setattr(asr, "_decode_many", per_turn(wordy))
    assert asr.transcribe(pcm, rate).text.startswith("Hello")
    assert windows == [whisper.MIN_WINDOW_FRAMES]  # enough words, no loop: decoded once


def test_a_decode_that_loops_is_repeated_in_the_full_window_and_collapsed_if_it_still_loops(  # type: ignore[no-untyped-def]
    asr, monkeypatch
) -> None:
    """Far too many words, a phrase over and over: the second opinion is Whisper's own 30 s window;
    if that loops too, the phrase is passed on once (scripted decoder; tests/unit/asr/
    test_repetition.py has the real prompts that looped)."""
    from voicebot.asr import whisper

    pcm, rate = pcm_of("transfer_sales_8k_s16.wav")
    loop = "Transfer me to sales please. " * 4
    windows: list[int] = []

    def scripted(audio, hints, min_window):  # type: ignore[no-untyped-def]
        windows.append(min_window)
        return (
            (loop if min_window < whisper.FULL_WINDOW_FRAMES else "Transfer me to sales please."),
            -0.1,
            0.0,
        )

    monkeypatch.setattr(asr, "_decode_many", per_turn(scripted))
    assert asr.transcribe(pcm, rate).text == "Transfer me to sales please."
    assert windows == [whisper.MIN_WINDOW_FRAMES, whisper.FULL_WINDOW_FRAMES]

    monkeypatch.setattr(asr, "_decode_many", per_turn(lambda audio, hints, window: (loop, -0.1, 0.0)))
    assert asr.transcribe(pcm, rate).text == "Transfer me to sales please."
