"""Decoding only what density needs: frames at a fixed rate, and the audio as 16 kHz mono.

Frames are decoded in order and only the ones nearest each sample time are converted to
RGB (scaled so the long side is at most ``max_side``). Rotation metadata is applied, so
OCR sees upright text. Very long videos are cut at ``max_seconds`` (the row says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

AUDIO_RATE = 16000


class DecodeError(RuntimeError):
    """The file cannot be analysed (missing, empty, corrupt, or no video stream)."""


@dataclass(frozen=True)
class Probe:
    """What the container holds: its duration and which streams exist."""

    duration: float | None
    has_video: bool
    has_audio: bool
    width: int
    height: int


@dataclass
class SampledFrames:
    times: list[float]
    frames: list[np.ndarray]
    rotation: int
    last_time: float


def _open(path: str | Path):
    import av

    path = Path(path)
    if not path.is_file():
        raise DecodeError(f"video file not found: {path}")
    if path.stat().st_size == 0:
        raise DecodeError(f"video file is empty (0 bytes): {path}")
    try:
        return av.open(str(path))
    except Exception as exc:  # PyAV raises InvalidDataError and friends for corrupt input
        raise DecodeError(f"cannot open {path.name}: {type(exc).__name__}: {exc}") from None


def probe(path: str | Path) -> Probe:
    """Streams and duration, without decoding."""
    with _open(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        duration = None
        if container.duration:
            duration = container.duration / 1_000_000
        elif video is not None and video.duration and video.time_base:
            duration = float(video.duration * video.time_base)
        return Probe(duration=duration, has_video=video is not None,
                     has_audio=bool(container.streams.audio),
                     width=video.codec_context.width if video else 0,
                     height=video.codec_context.height if video else 0)


def _target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale)), max(2, round(height * scale))


def sample_frames(path: str | Path, fps: float, max_seconds: float,
                  max_side: int = 640) -> SampledFrames:
    """RGB frames at ``fps`` (the first frame at or after each time k/fps) up to ``max_seconds``."""
    with _open(path) as container:
        if not container.streams.video:
            raise DecodeError(f"{Path(path).name} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        times, frames, rotation = [], [], 0
        next_index, last_time = 0, 0.0
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                last_time = frame.time
                if frame.time >= max_seconds:
                    break
                if frame.time + 1e-3 < next_index / fps:
                    continue
                # One frame per sample time; a source slower than ``fps`` is never duplicated.
                rotation = int(getattr(frame, "rotation", 0) or 0)
                size = _target_size(frame.width, frame.height, max_side)
                image = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                if rotation % 360:
                    image = np.ascontiguousarray(np.rot90(image, k=-(rotation // 90)))
                times.append(round(frame.time, 3))
                frames.append(image)
                while next_index / fps <= frame.time + 1e-3:
                    next_index += 1
        except Exception as exc:
            if not frames:
                raise DecodeError(f"cannot decode {Path(path).name}: "
                                  f"{type(exc).__name__}: {exc}") from None
        if not frames:
            raise DecodeError(f"{Path(path).name}: no decodable video frame")
        return SampledFrames(times=times, frames=frames, rotation=rotation, last_time=last_time)


def decode_audio(path: str | Path, max_seconds: float) -> np.ndarray | None:
    """The first ``max_seconds`` of audio as float32 mono at 16 kHz; None without audio."""
    import av

    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        chunks = []
        limit = int(max_seconds * AUDIO_RATE)
        total = 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1)
                chunks.append(chunk)
                total += chunk.size
            if total >= limit:
                break
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return audio[:limit].astype(np.float32)
