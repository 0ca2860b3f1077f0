"""What the audio API accepts: every kind of bad audio gets a sentence, never a crash (pure)."""

from __future__ import annotations

import io
import math
import wave

import pytest

from voicebot.inference import wire


def wav(pcm: bytes, rate: int = 8000, channels: int = 1, width: int = 2) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def test_reads_mono_and_mixes_stereo_down() -> None:
    mono = wire.read_wav(wav(b"\x10\x00" * 800))
    assert (mono.rate, len(mono.pcm)) == (8000, 1600)
    stereo = wire.read_wav(wav(b"\x10\x00\x30\x00" * 800, channels=2))
    assert stereo.pcm == b"\x20\x00" * 800


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "empty"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk", "not a PCM WAV"),
        (b"hello world, not audio at all", "not a PCM WAV"),
        (wav(b"\x00" * 800, width=1), "8-bit"),
        (wav(b"\x00\x00" * 800, rate=4000), "sample rate 4000"),
        (wav(b""), "no audio"),
        (wav(b"\x00\x00" * 8000 * 121), "at most 120 s"),
    ],
)
def test_bad_audio_says_what_is_wrong(data: bytes, says: str) -> None:
    with pytest.raises(wire.BadAudio, match=says):
        wire.read_wav(data)


def test_oversized_upload_is_refused_before_parsing() -> None:
    with pytest.raises(wire.BadAudio, match="larger than 16 MB"):
        wire.read_wav(b"\x00" * (wire.MAX_UPLOAD_BYTES + 1))


def test_write_wav_round_trips() -> None:
    from voicebot.media.audiofile import wav_bytes

    audio = wire.read_wav(wav_bytes(b"\x01\x02" * 400, 16000))
    assert (audio.rate, audio.pcm) == (16000, b"\x01\x02" * 400)


def test_verbose_json_carries_confidence_that_the_client_reads_back() -> None:
    body = wire.transcription_body("sales please", 0.8, 2.5, "en", "verbose_json")
    assert isinstance(body, dict)
    assert body["text"] == "sales please" and body["duration"] == 2.5
    assert wire.confidence_of(body["segments"]) == pytest.approx(0.8, abs=0.001)
    assert wire.transcription_body("", 0.0, 1.0, "en", "verbose_json")["segments"] == []  # type: ignore[index]
    assert wire.transcription_body("hi", 0.5, 1.0, "en", "json") == {"text": "hi"}
    assert wire.transcription_body("hi", 0.5, 1.0, "en", "text") == "hi"
    assert wire.confidence_of(None) is None
    assert wire.confidence_of([{"avg_logprob": math.log(0.5)}, {"avg_logprob": math.log(0.5)}]) == 0.5


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (None, "JSON object"),
        ({"input": ""}, "non-empty"),
        ({"input": "x" * 5000}, "longer than 4096"),
        ({"input": "hi", "response_format": "mp3"}, "mp3"),
        ({"input": "hi", "sample_rate": 100}, "sample_rate"),
        ({"input": "hi", "sample_rate": "8000"}, "sample_rate"),
        ({"input": "hi", "voice": 3}, "strings"),
    ],
)
def test_bad_speech_requests(body: object, says: str) -> None:
    with pytest.raises(wire.BadAudio, match=says):
        wire.speech_request(body)


def test_speech_request_defaults_are_openais() -> None:
    assert wire.speech_request({"input": "Hello."}) == ("Hello.", "default", "default", "pcm", 24000)
