"""What the audio API accepts and answers (pure: no I/O, no models).

Uploads are WAV (16-bit PCM, any rate, mono or stereo) or raw s16le at a stated rate; anything else
is a :class:`BadAudio` with a sentence saying what is wrong, answered 400 and never decoded.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from voicebot.media.audiofile import read_pcm16

MAX_UPLOAD_BYTES = 16 * 1024 * 1024
MAX_AUDIO_S = 120.0  # a call's turn is cut at 30 s; a minute of speech is already a long message
MIN_RATE, MAX_RATE = 8000, 48000
MAX_SPEECH_CHARS = 4096  # OpenAI's own limit for /v1/audio/speech


class BadAudio(ValueError):
    """The request's audio (or text) cannot be used; the message says why, for the caller of the API."""


@dataclass(frozen=True)
class Audio:
    pcm: bytes  # s16le mono
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.rate


def read_wav(data: bytes) -> Audio:
    """Mono s16le from a WAV file's bytes; BadAudio for anything unusable."""
    if not data:
        raise BadAudio("the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadAudio(f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    try:
        pcm, rate = read_pcm16(io.BytesIO(data), "the file", max_seconds=None)  # length: _checked
    except ValueError as exc:
        raise BadAudio(str(exc)) from None
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadAudio(f"sample rate {rate} Hz: send {MIN_RATE}-{MAX_RATE} Hz")
    return _checked(Audio(pcm, rate))


def read_raw(data: bytes, rate: int) -> Audio:
    """Raw s16le mono at ``rate`` (the streaming session's frames, or a ``pcm`` upload)."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadAudio(f"sample rate {rate} Hz: send {MIN_RATE}-{MAX_RATE} Hz")
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadAudio(f"the audio is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    return _checked(Audio(data[: len(data) // 2 * 2], rate))


def _checked(audio: Audio) -> Audio:
    if not audio.pcm:
        raise BadAudio("the file holds no audio")
    if audio.seconds > MAX_AUDIO_S:
        raise BadAudio(f"{audio.seconds:.0f} s of audio: at most {MAX_AUDIO_S:.0f} s per request")
    return audio


def transcription_body(
    text: str, confidence: float, audio_s: float, language: str, fmt: str
) -> dict[str, Any] | str:
    """The answer in OpenAI's response formats; ``verbose_json`` carries the decoder's confidence as
    one segment's ``avg_logprob`` (what OpenAI-compatible servers report), so any of them can be
    judged the same way by the client."""
    if fmt == "text":
        return text
    if fmt == "json":
        return {"text": text}
    logprob = math.log(confidence) if confidence > 0 else -10.0
    return {
        "task": "transcribe",
        "language": language,
        "duration": round(audio_s, 3),
        "text": text,
        "segments": [
            {"id": 0, "start": 0.0, "end": round(audio_s, 3), "text": text, "avg_logprob": round(logprob, 4)}
        ]
        if text
        else [],
    }


def confidence_of(segments: list[Any] | None) -> float | None:
    """The client's side of the above: exp(mean avg_logprob) of a verbose_json answer's segments
    (objects or dicts); None when the server sent none."""
    if not segments:
        return None
    values = [
        s.get("avg_logprob") if isinstance(s, dict) else getattr(s, "avg_logprob", None) for s in segments
    ]
    got = [float(v) for v in values if v is not None]
    return round(math.exp(min(0.0, sum(got) / len(got))), 3) if got else None


RESPONSE_FORMATS = ("json", "text", "verbose_json")
SPEECH_FORMATS = ("pcm", "wav")


def speech_request(body: Any) -> tuple[str, str, str, str, int]:
    """(text, model, voice, format, rate) from a /v1/audio/speech JSON body, or BadAudio."""
    if not isinstance(body, dict):
        raise BadAudio("send a JSON object")
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise BadAudio("'input' must be non-empty text")
    if len(text) > MAX_SPEECH_CHARS:
        raise BadAudio(f"'input' is longer than {MAX_SPEECH_CHARS} characters")
    fmt = body.get("response_format", "pcm")
    if fmt not in SPEECH_FORMATS:
        raise BadAudio(f"response_format {fmt!r}: this server sends {', '.join(SPEECH_FORMATS)}")
    rate = body.get("sample_rate", 24000)  # OpenAI's pcm is 24 kHz; voicebot asks for its call rate
    if not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise BadAudio(f"sample_rate must be an integer {MIN_RATE}-{MAX_RATE}")
    model = body.get("model") or "default"
    voice = body.get("voice") or "default"
    if not isinstance(model, str) or not isinstance(voice, str):
        raise BadAudio("'model' and 'voice' must be strings")
    return text, model, voice, fmt, rate
