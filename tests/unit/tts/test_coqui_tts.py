"""The coqui backend on a real (tiny, randomly initialised) VITS model built with coqui's own classes.

No coqui model ships offline, so the test makes one the way coqui's trainer leaves it on disk (config.json
plus checkpoint_<step>.pth) and takes the real load and synthesis path. The audio is noise-like speech
from random weights: the test checks its shape, rate and values, not what it says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicebot.tts.base import TtsError, create
from voicebot.tts.resample import to_call_pcm

try:
    import TTS  # noqa: F401  (raises ImportError itself without torch/torchaudio/torchcodec)

    COQUI_MISSING = ""
except ImportError as exc:
    COQUI_MISSING = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

needs_coqui = pytest.mark.skipif(
    bool(COQUI_MISSING),
    reason="the optional extra voicebot[coqui] (coqui-tts + torch 2.11, ~5.4 GB) is not installed: "
    f"{COQUI_MISSING}",
)


def build_tiny_vits(folder: Path, speakers: list[str] | None = None) -> Path:
    """A VITS model small enough to build in a second (~1 MB), saved as coqui's trainer saves one."""
    import torch
    from trainer.io import copy_model_files, save_checkpoint
    from TTS.config.shared_configs import BaseAudioConfig
    from TTS.tts.configs.vits_config import VitsArgs, VitsConfig
    from TTS.tts.models.vits import Vits

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    args = VitsArgs(
        hidden_channels=16,
        hidden_channels_ffn_text_encoder=32,
        num_layers_text_encoder=1,
        num_layers_posterior_encoder=1,
        num_layers_flow=1,
        upsample_initial_channel_decoder=32,
        resblock_kernel_sizes_decoder=[3],
        init_discriminator=False,
        use_sdp=False,
    )
    config = VitsConfig(
        model_args=args,
        audio=BaseAudioConfig(sample_rate=22050),
        use_phonemes=False,  # phonemizers need espeak data or extra packages; characters are enough
        text_cleaner="basic_cleaners",
    )
    if speakers:
        speakers_file = folder / "speakers.json"
        speakers_file.write_text(json.dumps({name: i for i, name in enumerate(speakers)}))
        for target in (config, config.model_args):
            target.use_speaker_embedding = True
            target.speakers_file = str(speakers_file)
        config.model_args.speaker_embedding_channels = 8
    model = Vits(config)
    copy_model_files(config, folder, {})  # config.json
    save_checkpoint(config, model, folder, current_step=0, epoch=0)  # checkpoint_0.pth
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vits(tmp_path_factory.mktemp("coqui") / "tiny-vits")


@pytest.fixture(scope="module")
def two_speakers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vits(tmp_path_factory.mktemp("coqui") / "two-speakers", ["alice", "bob"])


@needs_coqui
def test_loads_the_checkpoint_and_speaks_sentence_by_sentence(model_dir: Path) -> None:
    backend = create("coqui", model_dir=model_dir)
    assert backend.sample_rate == 22050 and backend.voice == "tiny-vits"
    parts = list(backend.stream("Hello there. Press one for sales."))
    assert len(parts) == 2
    for part in parts:
        assert part.dtype == np.float32 and part.ndim == 1
        assert 0 < part.size < 22050 * 5  # no 10000-sample pad left behind, no runaway length
        assert np.isfinite(part).all()
    pcm = to_call_pcm(np.concatenate(parts), backend.sample_rate, 8000)
    assert abs(len(pcm) // 2 - round(sum(p.size for p in parts) * 8000 / 22050)) <= 2
    assert list(backend.stream("")) == []


@needs_coqui
def test_the_model_loads_once_per_process(model_dir: Path) -> None:
    first: Any = create("coqui", model_dir=model_dir)
    again: Any = create("coqui", model_dir=str(model_dir), checkpoint="checkpoint_0.pth")
    assert again._synth is first._synth


@needs_coqui
def test_a_multi_speaker_model_needs_a_known_speaker(two_speakers: Path) -> None:
    with pytest.raises(TtsError, match=r"several speakers \(alice, bob\)"):
        create("coqui", model_dir=two_speakers)
    with pytest.raises(TtsError, match="no speaker 'carol'"):
        create("coqui", model_dir=two_speakers, speaker="carol")
    bob = create("coqui", model_dir=two_speakers, speaker="alice", voice="bob")  # a dialplan's voice wins
    assert bob.voice == "bob"
    (audio,) = bob.stream("Hello.")
    assert audio.size > 0 and np.isfinite(audio).all()


@needs_coqui
def test_a_broken_checkpoint_is_a_tts_error(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((model_dir / "config.json").read_text())
    (broken / "model.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(TtsError, match="could not load"):
        create("coqui", model_dir=broken)


def test_the_model_directory_is_checked_first(tmp_path: Path) -> None:
    with pytest.raises(TtsError, match="coqui_model_dir"):
        create("coqui")
    with pytest.raises(TtsError, match=r"no config\.json"):
        create("coqui", model_dir=tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TtsError, match=r"no \.pth checkpoint"):
        create("coqui", model_dir=tmp_path)
    (tmp_path / "a.pth").write_bytes(b"")
    (tmp_path / "b.pth").write_bytes(b"")
    with pytest.raises(TtsError, match=r"several checkpoints \(a\.pth, b\.pth\)"):
        create("coqui", model_dir=tmp_path)


@pytest.mark.skipif(not COQUI_MISSING, reason="the coqui extra is installed")
def test_without_the_extra_the_error_says_how_to_install_it(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.pth").write_bytes(b"")
    with pytest.raises(TtsError, match=r"pip install 'voicebot\[coqui\]'"):
        create("coqui", model_dir=tmp_path)
