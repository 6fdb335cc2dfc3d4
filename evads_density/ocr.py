"""On-screen text for Oden: RapidOCR on sampled frames, skipping frames that did not change.

OCR looks at the screen every ``1/ocr_fps`` seconds (default 1 frame/s) by timestamp: at each
look it takes the sampled frame on screen at that moment (:func:`ocr_schedule`), so a source
slower than the sampling rate still counts every second it shows. Each OCR'd frame is weighed
by the real time it covers. A frame is read only when its 32x18 grayscale thumbnail differs
from the last OCR'd frame's by more than ``change_threshold`` (mean absolute difference,
0..1); an unchanged frame reuses the previous text.

Counting policy (``--ocr-count``) for text that stays on screen:

- ``per-second`` (default): every second a text is on screen counts again, i.e. each OCR'd
  frame's units times the seconds it covers. This is how the authors' per-second event lines
  add up: counting them this way gives ~19.1 units/s on the RL split, near the paper's
  Oden of 18.66.
- ``unique``: each distinct text counts once per appearance (again only after it left the
  screen); ~8.4 units/s on the same split.
"""

from __future__ import annotations

import bisect
import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from evads_tasks.core.text_units import count_units

OCR_COUNT_POLICIES = ("per-second", "unique")
RAPIDOCR = "rapidocr (PP-OCR zh+en, onnxruntime)"


class RapidOCRReader:
    """Chinese+English PP-OCR models shipped inside the ``rapidocr-onnxruntime`` wheel."""

    name = RAPIDOCR

    def __init__(self, max_side: int = 640, min_score: float = 0.5) -> None:
        from rapidocr_onnxruntime import RapidOCR

        # The wheel's default upscales the short side to 736 px before detection (4x the
        # work on a 640x360 frame); detect at the decoded size instead.
        self.engine = RapidOCR(det_limit_side_len=max_side, det_limit_type="max")
        self.min_score = min_score

    def read(self, frame: np.ndarray) -> list[str]:
        """Text lines on a frame, top to bottom."""
        result, _ = self.engine(frame[..., ::-1])  # RapidOCR expects BGR like OpenCV
        return [text.strip() for _, text, score in (result or [])
                if float(score) >= self.min_score and text.strip()]


@dataclass(frozen=True)
class FrameText:
    time: float
    texts: tuple[str, ...]
    reused: bool


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A 32x18 grayscale thumbnail in 0..1 used to decide whether a frame changed."""
    return np.asarray(Image.fromarray(frame).convert("L").resize(
        (32, 18), Image.Resampling.BOX), dtype=np.float32) / 255.0


def frame_changed(previous: np.ndarray | None, current: np.ndarray, threshold: float) -> bool:
    """Whether two thumbnails differ by more than ``threshold`` (mean absolute difference)."""
    return previous is None or float(np.abs(previous - current).mean()) > threshold


def read_frames(reader, frames: Sequence[np.ndarray], times: Sequence[float],
                change_threshold: float) -> list[FrameText]:
    """OCR each frame that changed since the last OCR'd one; reuse the text otherwise."""
    results, last_thumb, last_texts = [], None, ()
    for time, frame in zip(times, frames, strict=True):
        thumb = thumbnail(frame)
        if frame_changed(last_thumb, thumb, change_threshold):
            last_texts, last_thumb = tuple(reader.read(frame)), thumb
            results.append(FrameText(time, last_texts, reused=False))
        else:
            results.append(FrameText(time, last_texts, reused=True))
    return results


def ocr_schedule(times: Sequence[float], ocr_fps: float, seconds: float,
                 slack: float = 0.0) -> list[tuple[int, float]]:
    """Which sampled frames to OCR and how many seconds each covers (pure).

    The screen is looked at every ``1/ocr_fps`` seconds over ``[0, seconds)``; each look takes
    the last sampled frame shown by then (``times`` ascending; ``slack`` seconds of grace for
    a frame sampled a little after its target time). Looks that land on the same frame are
    merged, so each frame appears once, weighed by the time it stays on screen; the weights
    add up to ``seconds``.
    """
    if ocr_fps <= 0 or seconds <= 0 or not times:
        raise ValueError(f"ocr_schedule needs ocr_fps > 0, seconds > 0 and frames; got "
                         f"{ocr_fps}, {seconds}, {len(times)} frames")
    picks: list[tuple[int, float]] = []
    for k in range(math.ceil(seconds * ocr_fps - 1e-9)):
        look = k / ocr_fps
        index = max(0, bisect.bisect_right(times, look + slack) - 1)
        covered = min(1.0 / ocr_fps, seconds - look)
        if picks and picks[-1][0] == index:
            picks[-1] = (index, picks[-1][1] + covered)
        else:
            picks.append((index, covered))
    return picks


def _same_text(a: str, b: str) -> bool:
    return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def screen_units(frame_texts: Sequence[Sequence[str]], seconds: Sequence[float],
                 policy: str) -> float:
    """On-screen text units of consecutive frames under a counting policy (see module doc).

    ``frame_texts[i]`` holds the text lines of a frame on screen for ``seconds[i]`` seconds.
    """
    if len(frame_texts) != len(seconds):
        raise ValueError(f"{len(frame_texts)} frames but {len(seconds)} durations")
    if policy == "per-second":
        return float(sum(sum(count_units(t) for t in texts) * covered
                         for texts, covered in zip(frame_texts, seconds, strict=True)))
    if policy == "unique":
        total, previous = 0, ()
        for texts in frame_texts:
            total += sum(count_units(t) for t in texts
                         if not any(_same_text(t, p) for p in previous))
            previous = tuple(texts)
        return float(total)
    raise ValueError(f"--ocr-count must be one of {OCR_COUNT_POLICIES}, got {policy!r}")
