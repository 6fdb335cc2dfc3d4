"""Drawing the frames of a scripted video with PIL and encoding them with ffmpeg.

Each scene is a flat coloured background (hard cut to the next colour), a
drawn product shape that drifts a little (or stands still in the still
scene), and the scene's overlay lines in large Noto CJK text on dark boxes,
big enough for rapidocr to read.
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_FAMILY = "Noto Sans CJK SC"
TEXT_SIZE = 40
PRICE_SIZE = 60
MOTION_PIXELS = 40      # horizontal drift of the product shape
MOTION_PERIOD = 2.0     # seconds per back-and-forth


@functools.cache
def font_path() -> str:
    """The Noto CJK font file, found with fontconfig."""
    try:
        found = subprocess.run(["fc-match", FONT_FAMILY, "--format=%{file}"], check=True,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(f"fontconfig (fc-match) failed: {exc}") from None
    if "CJK" not in Path(found).name:
        raise RuntimeError(f"font {FONT_FAMILY!r} is not installed (fc-match gave {found!r}); "
                           "apt-get install fonts-noto-cjk")
    return found


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(), size)


def _is_price(text: str) -> bool:
    return text.startswith("¥") or (text.endswith("元") and text[:-1].replace(".", "").isdigit())


def text_layer(lines: list[str], width: int, height: int) -> Image.Image:
    """The scene's overlay lines, centred and stacked upwards from the bottom edge."""
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    bottom = height - 12
    for text in reversed(lines):
        size = PRICE_SIZE if _is_price(text) else TEXT_SIZE
        font = _font(size)
        while draw.textlength(text, font=font) > width - 60 and size > 20:
            size -= 4
            font = _font(size)
        left, top, right, low = draw.textbbox((0, 0), text, font=font)
        box_w, box_h = right - left + 32, low - top + 20
        x0, y0 = (width - box_w) // 2, bottom - box_h
        draw.rounded_rectangle((x0, y0, x0 + box_w, bottom), radius=10, fill=(15, 15, 20, 225))
        colour = (255, 220, 40, 255) if _is_price(text) else (255, 255, 255, 255)
        draw.text((x0 + 16 - left, y0 + 10 - top), text, font=font, fill=colour)
        bottom = y0 - 8
    return layer


def draw_product(draw: ImageDraw.ImageDraw, shape: str, colour: tuple[int, int, int],
                 cx: float, cy: float) -> None:
    """A simple drawing of the product, centred at (cx, cy), about 150 x 110 pixels."""
    outline, dark = (20, 20, 20), tuple(max(0, c - 70) for c in colour)
    if shape == "tee":
        draw.polygon([(cx - 40, cy - 50), (cx - 75, cy - 25), (cx - 58, cy), (cx - 40, cy - 12),
                      (cx - 40, cy + 55), (cx + 40, cy + 55), (cx + 40, cy - 12), (cx + 58, cy),
                      (cx + 75, cy - 25), (cx + 40, cy - 50), (cx + 15, cy - 50),
                      (cx, cy - 38), (cx - 15, cy - 50)], fill=colour, outline=outline, width=3)
    elif shape == "bottle":
        draw.rounded_rectangle((cx - 30, cy - 20, cx + 30, cy + 55), 12, fill=colour,
                               outline=outline, width=3)
        draw.rectangle((cx - 12, cy - 45, cx + 12, cy - 20), fill=dark, outline=outline, width=3)
    elif shape == "brush":
        draw.rounded_rectangle((cx - 12, cy - 20, cx + 12, cy + 60), 8, fill=colour,
                               outline=outline, width=3)
        draw.rectangle((cx - 5, cy - 55, cx + 5, cy - 20), fill=dark, outline=outline, width=2)
    elif shape == "box":
        draw.rectangle((cx - 60, cy - 40, cx + 60, cy + 50), fill=colour, outline=outline, width=3)
        draw.rectangle((cx - 8, cy - 40, cx + 8, cy + 50), fill=(200, 30, 40))
    elif shape == "pillow":
        draw.rounded_rectangle((cx - 75, cy - 35, cx + 75, cy + 35), 30, fill=colour,
                               outline=outline, width=3)
    elif shape == "fryer":
        draw.rounded_rectangle((cx - 50, cy - 50, cx + 50, cy + 55), 18, fill=colour,
                               outline=outline, width=3)
        draw.ellipse((cx - 25, cy - 30, cx + 25, cy + 20), fill=(230, 140, 40), outline=outline)
    elif shape == "bag":
        draw.polygon([(cx - 45, cy - 50), (cx + 45, cy - 50), (cx + 60, cy + 55),
                      (cx - 60, cy + 55)], fill=colour, outline=outline, width=3)
    else:  # power bank and anything else: a rounded slab with charge dots
        draw.rounded_rectangle((cx - 40, cy - 55, cx + 40, cy + 55), 14, fill=colour,
                               outline=outline, width=3)
        for k in range(4):
            draw.ellipse((cx - 22 + 12 * k, cy + 35, cx - 14 + 12 * k, cy + 43),
                         fill=(120, 255, 120))


def frames(video: dict):
    """Yield every frame of a scripted video as raw RGB bytes (25 fps)."""
    width, height, fps = video["width"], video["height"], video["fps"]
    product = video["product"]
    for scene in video["scenes"]:
        lines = [o["text"] for o in video["overlays"] if o["scene"] == scene["index"]]
        text = text_layer(lines, width, height)
        background = Image.new("RGB", (width, height), tuple(scene["background"]))
        count = round((scene["end"] - scene["start"]) * fps)
        still = None
        for number in range(count):
            if still is not None:
                yield still
                continue
            t = number / fps
            angle = 2 * math.pi * (scene["phase"] + (0 if scene["still"] else t / MOTION_PERIOD))
            frame = background.copy()
            draw_product(ImageDraw.Draw(frame), product["shape"], tuple(product["colour"]),
                         width / 2 + MOTION_PIXELS * math.sin(angle),
                         88 + 8 * math.cos(angle))
            frame.paste(text, (0, 0), text)
            data = frame.tobytes()
            if scene["still"]:
                still = data
            yield data


def pipe_to_ffmpeg(raw_frames: Iterable[bytes], out: Path, *, width: int, height: int,
                   fps: int, options: Sequence[str]) -> Path:
    """Encode ``raw_frames`` (RGB bytes) into ``out`` with ffmpeg reading them on stdin.

    ``options`` (further inputs, maps, codecs) go between that input and ``out``. When ffmpeg
    stops early, writing stops and ffmpeg's own error is raised.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg)")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", *options, str(out)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for data in raw_frames:
            process.stdin.write(data)
    except BrokenPipeError:
        pass  # ffmpeg stopped early: its error is reported below
    finally:
        process.stdin.close()
    error = process.stderr.read().decode(errors="replace")
    if process.wait() != 0:
        raise RuntimeError(f"ffmpeg failed encoding {out}: {error.strip()}")
    return out


def encode(video: dict, out: Path, audio: Path | None) -> Path:
    """Pipe the frames into ffmpeg: H.264 (yuv420p) video, AAC audio when given."""
    options = ["-i", str(audio)] if audio is not None else []
    options += ["-map", "0:v", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
                "-pix_fmt", "yuv420p", "-threads", "1", "-g", str(2 * video["fps"])]
    if audio is not None:
        options += ["-map", "1:a", "-c:a", "aac", "-b:a", "96k", "-ar", "44100"]
    options += ["-t", f"{video['duration']}", "-movflags", "+faststart"]
    return pipe_to_ffmpeg(frames(video), out, width=video["width"], height=video["height"],
                          fps=video["fps"], options=options)
