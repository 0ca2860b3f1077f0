"""coqui-tts: a model directory of the user's (config.json + a .pth checkpoint), e.g. a trained VITS voice.

Optional: `pip install 'voicebot[coqui]'` brings coqui-tts with torch (several GB; see docs/speech.md).
No coqui model ships offline, so nothing here downloads one: the model is a directory on disk. TTS and
torch import lazily, so the other backends work without the extra. A model is loaded once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.tts.base import Audio, TtsError, register

_PREFERRED_CHECKPOINTS = ("model.pth", "best_model.pth", "model_file.pth")


@register("coqui")
class CoquiTts:
    name = "coqui"

    def __init__(
        self,
        model_dir: str | Path | None = None,
        checkpoint: str | None = None,
        speaker: str | None = None,
        language: str | None = None,
        threads: int = 1,
        voice: str | None = None,
    ) -> None:
        """``voice`` (a dialplan's choice) names a speaker too and wins over the configured ``speaker``."""
        speaker = voice or speaker
        if model_dir is None:
            raise TtsError(
                "coqui needs a model directory (config.json and a .pth checkpoint): set tts.coqui_model_dir"
            )
        folder = Path(model_dir).expanduser()
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise TtsError(f"coqui model directory {folder} has no config.json")
        checkpoint_path = _checkpoint(folder, checkpoint)
        _import_coqui()
        self._synth: Any = _load_model(checkpoint_path.resolve(), config_path.resolve(), threads)
        model = self._synth.tts_model
        speakers = list(model.speaker_manager.name_to_id) if model.speaker_manager is not None else []
        languages = list(model.language_manager.language_names)
        self._speaker = _choose("speaker", speaker, speakers, folder)
        self._language = _choose("language", language, languages, folder)
        self.voice = speaker or folder.name
        self.sample_rate = int(self._synth.output_sample_rate)

    def stream(self, text: str) -> Iterator[Audio]:
        from TTS.utils.synthesizer import PAD_SILENCE_SAMPLES

        try:
            sentences = [s for s in self._synth.split_into_sentences(text, self._language) if s.strip()]
            for sentence in sentences:
                wav = self._synth.tts(
                    sentence,
                    speaker_name=self._speaker,
                    language_name=self._language,
                    split_sentences=False,
                )
                # the synthesizer appends 10000 zero samples after every sentence; the pause belongs
                # to whoever plays the audio, and a streamed sentence should end when its speech does
                audio = np.asarray(wav, dtype=np.float32)
                yield audio[:-PAD_SILENCE_SAMPLES] if audio.size > PAD_SILENCE_SAMPLES else audio
        except Exception as exc:
            raise TtsError(f"coqui could not synthesise {text[:40]!r}: {exc}") from exc


def _import_coqui() -> None:
    try:
        import TTS  # noqa: F401  (raises ImportError itself when torch/torchaudio/torchcodec are missing)
    except ImportError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TtsError(
            f"the coqui backend needs the optional extra: pip install 'voicebot[coqui]' ({reason})"
        ) from exc


def _checkpoint(folder: Path, name: str | None) -> Path:
    """``name`` inside ``folder``; else model.pth/best_model.pth/model_file.pth, else the only .pth."""
    if name is not None:
        path = folder / name
        if not path.is_file():
            raise TtsError(f"coqui checkpoint {path} is missing")
        return path
    for preferred in _PREFERRED_CHECKPOINTS:
        if (folder / preferred).is_file():
            return folder / preferred
    found = sorted(folder.glob("*.pth"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise TtsError(f"coqui model directory {folder} has no .pth checkpoint")
    raise TtsError(
        f"coqui model directory {folder} has several checkpoints ({', '.join(p.name for p in found)}): "
        "set tts.coqui_checkpoint to one of them"
    )


def _choose(what: str, wanted: str | None, available: list[str], folder: Path) -> str | None:
    """Check a speaker/language against the model's; a model with several needs one named."""
    if wanted is None:
        if len(available) > 1:
            raise TtsError(
                f"coqui model {folder} has several {what}s ({', '.join(available)}): "
                f"set tts.coqui_{what} to one of them"
            )
        return None
    if wanted not in available:
        known = f"its {what}s are {', '.join(available)}" if available else f"it has no named {what}s"
        raise TtsError(f"coqui model {folder} has no {what} {wanted!r}: {known}")
    return wanted


@functools.cache
def _load_model(checkpoint: Path, config: Path, threads: int) -> Any:
    import torch
    from TTS.utils.synthesizer import Synthesizer

    torch.set_num_threads(threads)  # per process: a call worker owns its process
    try:
        return Synthesizer(tts_checkpoint=checkpoint, tts_config_path=config)
    except Exception as exc:
        raise TtsError(f"coqui could not load {checkpoint} with {config}: {exc!r}") from exc
