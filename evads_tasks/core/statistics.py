"""Error bars for E-VAds means: intervals clustered by video, and paired comparisons.

Every E-VAds video carries five questions, so the questions are not independent and a naive
standard error is too small. Every interval here treats the video (or any cluster key) as
the unit: the standard error is the cluster-robust (CR1) one, and bootstraps resample whole
clusters. Pure functions over plain sequences and mappings; shared by the lmms-eval
aggregations, the run report, ``compare``, the modality audit and the RL before/after.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_ITERATIONS = 2000
SEED = 0


def _z(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (1.96 for 0.95)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _cluster_index(clusters: Sequence[Hashable]) -> tuple[np.ndarray, int]:
    """Each item's cluster as an integer 0..G-1, and G."""
    ids: dict[Hashable, int] = {}
    index = np.fromiter((ids.setdefault(c, len(ids)) for c in clusters), dtype=np.int64,
                        count=len(clusters))
    return index, len(ids)


def clustered_stderr(values: Sequence[float], clusters: Sequence[Hashable]) -> float:
    """The cluster-robust (CR1) standard error of the mean of ``values``:
    ``sqrt(G/(G-1) * sum_g (sum_{i in g} (x_i - mean))^2) / n`` over the G clusters.

    It is what an intercept-only least-squares fit with cluster-robust covariance gives
    (statsmodels' ``cov_type="cluster"``). NaN with fewer than two clusters.
    """
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster ids")
    x = np.asarray(values, dtype=float)
    index, groups = _cluster_index(clusters)
    if groups < 2:
        return float("nan")
    sums = np.bincount(index, weights=x - x.mean(), minlength=groups)
    return math.sqrt(groups / (groups - 1) * float(np.sum(sums ** 2))) / len(x)


@dataclass(frozen=True)
class Interval:
    """A mean with its clustered standard error and a normal ``confidence`` interval."""

    mean: float
    stderr: float
    low: float
    high: float
    n: int
    clusters: int

    def __str__(self) -> str:
        if math.isnan(self.stderr):
            return f"{self.mean:.4f}"
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


def clustered_mean(values: Sequence[float], clusters: Sequence[Hashable],
                   confidence: float = CONFIDENCE) -> Interval:
    """The mean of ``values`` with a standard error clustered by ``clusters``."""
    if not values:
        raise ValueError("no values to average")
    mean = float(np.mean(np.asarray(values, dtype=float)))
    stderr = clustered_stderr(values, clusters)
    half = _z(confidence) * stderr
    return Interval(mean, stderr, mean - half, mean + half, len(values),
                    len(set(clusters)))


def cluster_bootstrap(values: Sequence[float], clusters: Sequence[Hashable],
                      statistic: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                      iterations: int = BOOTSTRAP_ITERATIONS, seed: int = SEED,
                      confidence: float = CONFIDENCE) -> tuple[float, float]:
    """A percentile ``confidence`` interval of a mean (or of ``statistic``) resampling
    whole clusters with replacement.

    ``statistic(sums, counts)`` gets, per replicate (rows), the resampled clusters' value
    sums and item counts (columns) and returns one number per replicate; the default is
    the mean of all resampled items.
    """
    x = np.asarray(values, dtype=float)
    index, groups = _cluster_index(clusters)
    if groups == 0:
        raise ValueError("no values to resample")
    sums = np.bincount(index, weights=x, minlength=groups)
    counts = np.bincount(index, minlength=groups).astype(float)
    draws = np.random.default_rng(seed).integers(0, groups, size=(iterations, groups))
    replicate_sums, replicate_counts = sums[draws], counts[draws]
    if statistic is None:
        estimates = replicate_sums.sum(axis=1) / replicate_counts.sum(axis=1)
    else:
        estimates = statistic(replicate_sums, replicate_counts)
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(estimates, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedDifference:
    """B minus A on the questions both runs scored, with intervals that resample videos."""

    a_mean: float
    b_mean: float
    difference: float
    low: float
    high: float
    p_value: float
    n: int
    clusters: int
    relative: float | None       # (B - A) / A: the paper's "relative gain"; None when A is 0
    relative_low: float | None
    relative_high: float | None

    @property
    def significant(self) -> bool:
        """Whether the interval of the difference excludes 0."""
        return self.low > 0 or self.high < 0


def paired_difference(a: Mapping[Hashable, float], b: Mapping[Hashable, float],
                      cluster_of: Mapping[Hashable, Hashable],
                      iterations: int = BOOTSTRAP_ITERATIONS, seed: int = SEED,
                      confidence: float = CONFIDENCE) -> PairedDifference:
    """Compare two runs' per-question scores (``None`` = not scored) on the questions both
    scored: the difference of means with a paired bootstrap interval over clusters, a
    two-sided p-value from a sign-flip permutation test over clusters (under "no
    difference", A and B are exchangeable within each video), and the relative gain."""
    keys = [k for k in a if k in b and a[k] is not None and b[k] is not None]
    if not keys:
        raise ValueError("the two runs scored no question in common")
    xa = np.array([a[k] for k in keys], dtype=float)
    xb = np.array([b[k] for k in keys], dtype=float)
    index, groups = _cluster_index([cluster_of[k] for k in keys])
    sum_a = np.bincount(index, weights=xa, minlength=groups)
    sum_b = np.bincount(index, weights=xb, minlength=groups)
    counts = np.bincount(index, minlength=groups).astype(float)
    n = float(len(keys))
    difference = float((sum_b.sum() - sum_a.sum()) / n)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, groups, size=(iterations, groups))
    boot_n = counts[draws].sum(axis=1)
    boot_a = sum_a[draws].sum(axis=1) / boot_n
    boot_b = sum_b[draws].sum(axis=1) / boot_n
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot_b - boot_a, [tail, 100 - tail])
    signs = rng.choice((-1.0, 1.0), size=(iterations, groups))
    flipped = np.abs((signs * (sum_b - sum_a)).sum(axis=1) / n)
    p_value = float((1 + np.sum(flipped >= abs(difference) - 1e-12)) / (1 + iterations))
    a_mean, b_mean = float(xa.mean()), float(xb.mean())
    relative = relative_low = relative_high = None
    if a_mean != 0:
        relative = b_mean / a_mean - 1
        with np.errstate(divide="ignore", invalid="ignore"):  # replicates whose A mean is 0
            ratios = boot_b / boot_a - 1
            relative_low, relative_high = (float(v) for v in
                                           np.nanpercentile(ratios, [tail, 100 - tail]))
    return PairedDifference(a_mean, b_mean, difference, float(low), float(high),
                            min(p_value, 1.0), len(keys), groups, relative, relative_low,
                            relative_high)


def describe_difference(label: str, result: PairedDifference, a_name: str = "A",
                        b_name: str = "B") -> str:
    """One plain sentence: who is ahead on ``label`` and by how much, or that the
    difference is within noise (its interval contains 0)."""
    span = f"{result.difference:+.2f} [{result.low:+.2f}, {result.high:+.2f}]"
    if not result.significant:
        return f"on {label} the difference is within noise ({span}, p={result.p_value:.2f})"
    ahead, behind = (b_name, a_name) if result.difference > 0 else (a_name, b_name)
    return (f"{ahead} is ahead of {behind} on {label} by {abs(result.difference):.2f} "
            f"[{min(abs(result.low), abs(result.high)):.2f}, "
            f"{max(abs(result.low), abs(result.high)):.2f}] (p={result.p_value:.3f})")
