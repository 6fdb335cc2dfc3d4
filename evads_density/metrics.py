"""Pure density metrics: Vden from frame features, rates, and distribution summaries.

Vden follows the published form ``alpha * mean_i(1 - S_i)``. The paper leaves the frame
rate, neighbourhood and weights open; our defaults (:class:`VdenSettings`) are 2 frames/s,
neighbours within +-2 frames weighted ``1/d`` (``d`` frames apart) and ``alpha = 100``, so a
still video scores ~0 and a hard cut every second scores ~60 or more.

The window counts frames actually sampled. Sampling never repeats a frame, so for a source
slower than ``fps`` (e.g. a 1 frame/s slideshow) +-2 frames span more time than 1 s; the
row notes it. Repeating frames instead would add identical pairs and pull Vden towards 0
for the same pictures, which is the larger distortion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VdenSettings:
    """How Vden samples and weighs frames (all exposed on the CLI)."""

    fps: float = 2.0
    window: int = 2
    decay: float = 1.0
    alpha: float = 100.0

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.window < 1 or self.decay < 0 or self.alpha <= 0:
            raise ValueError(f"invalid Vden settings: {self}")


def neighbour_similarities(features: np.ndarray, window: int = 2, decay: float = 1.0) -> np.ndarray:
    """S_i: the ``1/d**decay``-weighted mean cosine similarity of frame i to frames i+-1..window.

    Frames at the ends use the neighbours they have. A single frame has no neighbour and
    gets S = 1 (nothing changes).
    """
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2:
        raise ValueError(f"features must be a 2-D array (frames x dims), got shape {feats.shape}")
    count = len(feats)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    unit = feats / np.maximum(norms, 1e-12)
    weighted = np.zeros(count)
    weights = np.zeros(count)
    for d in range(1, min(window, count - 1) + 1):
        sims = np.einsum("ij,ij->i", unit[:-d], unit[d:])
        w = 1.0 / d ** decay
        weighted[:-d] += w * sims
        weighted[d:] += w * sims
        weights[:-d] += w
        weights[d:] += w
    return np.where(weights > 0, weighted / np.maximum(weights, 1e-12), 1.0)


def vden(similarities: Sequence[float] | np.ndarray, alpha: float = 100.0) -> float:
    """``alpha * mean(1 - S_i)``; 0 for a video without frames."""
    sims = np.asarray(similarities, dtype=np.float64)
    return float(alpha * np.mean(1.0 - sims)) if sims.size else 0.0


def rate(units: float, seconds: float) -> float:
    """Units per second; raises on a non-positive duration (the caller reports the video)."""
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {seconds}")
    return units / seconds


def distribution(values: Sequence[float | None]) -> dict:
    """``mean``, ``median``, ``p10``, ``p90`` and ``n`` of the values that are not None."""
    data = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if not data.size:
        return {"mean": None, "median": None, "p10": None, "p90": None, "n": 0}
    return {"mean": float(data.mean()), "median": float(np.median(data)),
            "p10": float(np.percentile(data, 10)), "p90": float(np.percentile(data, 90)),
            "n": int(data.size)}
