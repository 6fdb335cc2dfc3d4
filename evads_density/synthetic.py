"""Clips with known content for tests and the benchmark: scenes, overlay text, voiceover.

Each scene is a seeded random picture (shapes on a colour gradient) held still, with an
optional overlay line; a new scene is a hard cut. Speech comes from espeak-ng and the
encoding from ffmpeg, the same tools the bundled sample uses.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from evads_tasks.sample.render import font_path, pipe_to_ffmpeg
from evads_tasks.sample.speech import synthesize, wav_seconds


@dataclass(frozen=True)
class Scene:
    seconds: float
    seed: int
    overlay: str = ""


def scene_picture(scene: Scene, width: int, height: int) -> np.ndarray:
    """The scene's still RGB picture (deterministic from its seed)."""
    rng = np.random.default_rng(scene.seed)
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    base = (top * (1 - ramp) + bottom * ramp).astype(np.uint8).repeat(width, axis=1)
    image = Image.fromarray(base)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.integers(0, width), rng.integers(0, height)
        r = int(rng.integers(height // 12, height // 3))
        box = (x - r, y - r, x + r, y + r)
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    if scene.overlay:
        font = ImageFont.truetype(font_path(), max(18, height // 9))
        left, top_, right, low = draw.textbbox((0, 0), scene.overlay, font=font)
        x, y = (width - (right - left)) // 2, height - (low - top_) - height // 8
        draw.rectangle((x - 12, y - 8 + top_, x + right - left + 12, y + low + 8),
                       fill=(20, 20, 20))
        draw.text((x - left, y), scene.overlay, font=font, fill=(255, 255, 255))
    return np.asarray(image)


def _frames(scenes: Sequence[Scene], width: int, height: int, fps: int) -> Iterator[bytes]:
    """Each scene's picture as raw RGB bytes, repeated for as many frames as it lasts."""
    for scene in scenes:
        data = scene_picture(scene, width, height).tobytes()
        for _ in range(round(scene.seconds * fps)):
            yield data


def make_clip(path: Path, scenes: Sequence[Scene], *, width: int = 320, height: int = 180,
              fps: int = 25, speech: str | None = None, voice: str = "en",
              audio: Path | None = None) -> Path:
    """Encode the scenes (H.264; an AAC voiceover of ``speech`` by espeak-ng, or of the
    ``audio`` file) into ``path``."""
    seconds = sum(s.seconds for s in scenes)
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    with tempfile.TemporaryDirectory() as tmp:
        options = []
        voiceover = synthesize([speech], Path(tmp), voice)[speech] if speech else audio
        if voiceover:
            options += ["-i", str(voiceover), "-map", "0:v", "-map", "1:a", "-c:a", "aac"]
        options += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", pix_fmt,
                    "-t", f"{seconds}"]
        return pipe_to_ffmpeg(_frames(scenes, width, height, fps), path, width=width,
                              height=height, fps=fps, options=options)


def speech_seconds(text: str, voice: str = "en") -> float:
    """How long espeak-ng takes to say ``text`` (to know the true words per second)."""
    with tempfile.TemporaryDirectory() as tmp:
        return wav_seconds(synthesize([text], Path(tmp), voice)[text])


def audio_track(parts: Sequence[Path | float], out: Path) -> Path:
    """One 16 kHz mono wav of ``parts`` in order: audio files (any format ffmpeg reads) and
    numbers, each that many seconds of digital silence; e.g. ``[2.0, clip]`` delays a clip."""
    inputs, labels = [], []
    for index, part in enumerate(parts):
        if isinstance(part, (int, float)):
            inputs += ["-f", "lavfi", "-t", f"{part}", "-i", "anullsrc=r=16000:cl=mono"]
        else:
            inputs += ["-i", str(part)]
        labels.append(f"[{index}:a]aresample=16000,aformat=channel_layouts=mono[a{index}]")
    joined = "".join(f"[a{i}]" for i in range(len(parts)))
    graph = ";".join(labels) + f";{joined}concat=n={len(parts)}:v=0:a=1[out]"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *inputs, "-filter_complex", graph,
                    "-map", "[out]", "-ar", "16000", "-ac", "1", str(out)],
                   check=True, capture_output=True)
    return out
