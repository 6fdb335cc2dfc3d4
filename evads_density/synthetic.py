"""Clips with known content for tests and the benchmark: scenes, overlay text, voiceover.

Each scene is a seeded random picture (shapes on a colour gradient) held still, with an
optional overlay line; a new scene is a hard cut. Speech comes from espeak-ng and the
encoding from ffmpeg, the same tools the bundled sample uses.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from evads_tasks.sample.render import font_path
from evads_tasks.sample.speech import synthesize


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


def make_clip(path: Path, scenes: Sequence[Scene], *, width: int = 320, height: int = 180,
              fps: int = 25, speech: str | None = None, voice: str = "en",
              extra_args: Sequence[str] = ()) -> Path:
    """Encode the scenes (H.264; AAC voiceover when ``speech`` is given) into ``path``."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg)")
    path.parent.mkdir(parents=True, exist_ok=True)
    seconds = sum(s.seconds for s in scenes)
    with tempfile.TemporaryDirectory() as tmp:
        command = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                   "-s", f"{width}x{height}", "-r", str(fps), "-i", "-"]
        if speech:
            wav = synthesize([speech], Path(tmp), voice)[speech]
            command += ["-i", str(wav), "-map", "0:v", "-map", "1:a", "-c:a", "aac"]
        pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        command += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", pix_fmt,
                    "-t", f"{seconds}", *extra_args, str(path)]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        for scene in scenes:
            data = scene_picture(scene, width, height).tobytes()
            for _ in range(round(scene.seconds * fps)):
                process.stdin.write(data)
        process.stdin.close()
        error = process.stderr.read().decode(errors="replace")
        if process.wait() != 0:
            raise RuntimeError(f"ffmpeg failed writing {path}: {error.strip()}")
    return path


def speech_seconds(text: str, voice: str = "en") -> float:
    """How long espeak-ng takes to say ``text`` (to know the true words per second)."""
    import wave

    with tempfile.TemporaryDirectory() as tmp:
        wav = synthesize([text], Path(tmp), voice)[text]
        with wave.open(str(wav)) as handle:
            return handle.getnframes() / handle.getframerate()
