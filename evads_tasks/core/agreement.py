"""How far two judgements of the same predictions agree (pure statistics, plus one chart).

Why: the paper's judge, ``qwen-plus``, is an alias its provider updates, and a user may
swap it for another judge or protocol. To say how much that moves a number, ``compare A B``
reports, over the questions judged in both runs:

- exact-level agreement (the share of questions with the same score);
- Cohen's kappa with quadratic weights: agreement beyond chance, where a disagreement of
  two levels costs four times one of one level. The categories are the five judge levels
  when every score is one (so an unused level does not change the weights), else the
  distinct scores seen (the official protocol reads any number), as
  ``sklearn.metrics.cohen_kappa_score(..., weights="quadratic", labels=...)`` computes it;
- Spearman's rank correlation of the per-question scores (ties get their average rank, as
  ``scipy.stats.spearmanr``);
- the shift of a task's mean (B - A over the questions judged in both) with a paired
  bootstrap 95% interval: questions are resampled with replacement ``iterations`` times
  from a fixed seed, so a report is reproducible.

Undefined values (no pair, a constant column) are NaN, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evads_tasks.core.scoring import LEVELS

BOOTSTRAP_ITERATIONS = 10_000
BOOTSTRAP_SEED = 0
_DRAWS_PER_CHUNK = 2_000_000


def exact_agreement(a: Sequence[float], b: Sequence[float]) -> float:
    """The share of pairs with the same score; NaN without pairs."""
    _check_pairs(a, b)
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a) if a else math.nan


def kappa_categories(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """The five levels when every score is one, else the sorted distinct scores."""
    seen = set(a) | set(b)
    return sorted(LEVELS) if seen <= set(LEVELS) else sorted(seen)


def quadratic_kappa(a: Sequence[float], b: Sequence[float],
                    categories: Sequence[float] | None = None) -> float:
    """Cohen's kappa with quadratic weights ``(i - j)^2`` on the category indices.

    ``1 - sum(w * observed) / sum(w * expected)``, expected from the two marginals; NaN
    without pairs or when chance alone explains every pair (the expected disagreement is 0,
    e.g. both runs give every question one score)."""
    _check_pairs(a, b)
    if not a:
        return math.nan
    observed = np.array(confusion(a, b, categories)[1], dtype=float)
    k = len(observed)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    weights = (np.arange(k)[:, None] - np.arange(k)[None, :]) ** 2
    disagreement = float((weights * expected).sum())
    if disagreement == 0:
        return math.nan
    return 1.0 - float((weights * observed).sum()) / disagreement


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of their positions."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho: Pearson's correlation of the average ranks; NaN with fewer than two
    pairs or when either side is constant."""
    _check_pairs(a, b)
    if len(a) < 2:
        return math.nan
    x, y = np.array(average_ranks(a)), np.array(average_ranks(b))
    x, y = x - x.mean(), y - y.mean()
    scale = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum()) / scale if scale else math.nan


@dataclass(frozen=True)
class Shift:
    """Mean of B minus mean of A over paired questions, with its bootstrap 95% interval."""

    n: int
    shift: float
    low: float
    high: float


def mean_shift(a: Sequence[float], b: Sequence[float], *,
               iterations: int = BOOTSTRAP_ITERATIONS, seed: int = BOOTSTRAP_SEED) -> Shift:
    """``mean(b) - mean(a)`` over paired scores and the 2.5th-97.5th percentile of that
    shift over ``iterations`` paired resamples (NaN without pairs; a single pair gives a
    zero-width interval)."""
    _check_pairs(a, b)
    if not a:
        return Shift(0, math.nan, math.nan, math.nan)
    differences = np.array(b, dtype=float) - np.array(a, dtype=float)
    rng = np.random.default_rng(seed)
    n = len(differences)
    chunk = max(1, _DRAWS_PER_CHUNK // n)  # bounded memory for the test split's 3,385 a task
    means = np.concatenate([
        differences[rng.integers(0, n, size=(min(chunk, iterations - start), n))].mean(axis=1)
        for start in range(0, iterations, chunk)])
    low, high = np.percentile(means, [2.5, 97.5])
    return Shift(len(differences), float(differences.mean()), float(low), float(high))


def judge_agreement(a: Sequence[float], b: Sequence[float]) -> dict:
    """Every figure above for one set of paired scores (A's and B's, same order)."""
    shift = mean_shift(a, b)
    return {"pairs": len(a), "exact": exact_agreement(a, b), "kappa": quadratic_kappa(a, b),
            "spearman": spearman(a, b), "shift": shift.shift, "shift_low": shift.low,
            "shift_high": shift.high}


def confusion(a: Sequence[float], b: Sequence[float],
              categories: Sequence[float] | None = None) -> tuple[list[float], list[list[int]]]:
    """(categories, counts[i][j] of pairs with A = categories[i] and B = categories[j])."""
    _check_pairs(a, b)
    categories = list(categories) if categories is not None else kappa_categories(a, b)
    index = {value: i for i, value in enumerate(categories)}
    counts = [[0] * len(categories) for _ in categories]
    for x, y in zip(a, b, strict=True):
        counts[index[x]][index[y]] += 1
    return categories, counts


def draw_confusion(a: Sequence[float], b: Sequence[float], path: str | Path,
                   title: str, names: tuple[str, str] = ("A", "B")) -> Path | None:
    """A heat map of the levels A gave (rows) against B's (columns), each cell its count;
    None without matplotlib (it comes with the ``density`` extra) or without pairs."""
    if not a:
        return None
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories, counts = confusion(a, b)
    labels = [f"{value:g}" for value in categories]
    fig, axis = plt.subplots(figsize=(1.1 * len(labels) + 2.5, 1.0 * len(labels) + 2),
                             constrained_layout=True)
    image = axis.imshow(np.array(counts), cmap="Blues")
    top = max(max(row) for row in counts) or 1
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            axis.text(j, i, str(count), ha="center", va="center",
                      color="white" if count > top / 2 else "black", fontsize=9)
    axis.set_xticks(range(len(labels)), labels)
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel(f"{names[1]}: score")
    axis.set_ylabel(f"{names[0]}: score")
    axis.set_title(title, fontsize=9, wrap=True)
    fig.colorbar(image, ax=axis, shrink=0.8, label="questions")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _check_pairs(a: Sequence[float], b: Sequence[float]) -> None:
    if len(a) != len(b):
        raise ValueError(f"paired scores differ in length: {len(a)} and {len(b)}")
