"""The voiceover: espeak-ng lines, their measured lengths, and one track per video."""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np

ESPEAK_SPEED = 175  # words per minute
SILENCE_LEVEL = 300  # 16-bit amplitude below which espeak-ng output counts as silence


def _espeak() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng; "
                           "`make system-packages` does it)")
    return binary


def synthesize(sentences: Iterable[str], folder: Path, voice: str = "en") -> dict[str, Path]:
    """One wav per distinct sentence, spoken by espeak-ng; returns text -> wav path."""
    folder.mkdir(parents=True, exist_ok=True)
    binary, wavs = _espeak(), {}
    for number, text in enumerate(sorted(set(sentences))):
        path = folder / f"line_{number:03d}.wav"
        subprocess.run([binary, "-v", voice, "-s", str(ESPEAK_SPEED), "-w", str(path), text],
                       check=True, capture_output=True)
        _trim_silence(path)
        wavs[text] = path
    return wavs


def _trim_silence(path: Path) -> None:
    """Cut espeak-ng's leading and trailing silence, so the wav length is the speech length."""
    data, rate = _samples(path)
    loud = np.flatnonzero(np.abs(data.astype(np.int32)) > SILENCE_LEVEL)
    if loud.size == 0:
        raise RuntimeError(f"espeak-ng produced silence in {path}")
    _write(path, data[loud[0]:loud[-1] + 1], rate)


def _write(path: Path, data: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(data.astype(np.int16).tobytes())


def wav_seconds(path: Path) -> float:
    """Length of a wav file from its header."""
    with wave.open(str(path)) as handle:
        return handle.getnframes() / handle.getframerate()


def _samples(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as handle:
        if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono audio from espeak-ng")
        data = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
        return data, handle.getframerate()


def voiceover_track(speech: list[dict], wavs: dict[str, Path], duration: float,
                    out: Path) -> Path:
    """Place each scripted line at its start time in a silent track as long as the video."""
    rates = {_samples(wavs[line["text"]])[1] for line in speech}
    if len(rates) != 1:
        raise ValueError(f"espeak-ng lines have mixed sample rates {sorted(rates)}")
    rate = rates.pop()
    track = np.zeros(int(round(duration * rate)), dtype=np.int16)
    for line in speech:
        data, _ = _samples(wavs[line["text"]])
        at = int(round(line["start"] * rate))
        track[at:at + len(data)] = data[:len(track) - at]
    _write(out, track, rate)
    return out
