"""Clustered intervals and paired comparisons (evads_tasks.core.statistics), checked against
computations written out independently here."""

from __future__ import annotations

import math
import random

import pytest

from evads_tasks.core.statistics import (
    clustered_mean,
    clustered_stderr,
    describe_difference,
    paired_difference,
)


def five_per_video(videos: int, seed: int = 7) -> tuple[list[float], list[str]]:
    """Judge levels with a strong per-video effect, five questions per video."""
    rng = random.Random(seed)
    values, clusters = [], []
    for video in range(videos):
        base = rng.choice((0.0, 0.25, 0.5, 0.75, 1.0))
        for _ in range(5):
            values.append(min(1.0, max(0.0, base + rng.choice((-0.25, 0.0, 0.0, 0.25)))))
            clusters.append(f"v{video}")
    return values, clusters


def cr1_by_hand(values: list[float], clusters: list[str]) -> float:
    """The cluster-robust variance of an intercept-only regression, written as loops."""
    n = len(values)
    mean = sum(values) / n
    residual_sums: dict[str, float] = {}
    for value, cluster in zip(values, clusters, strict=True):
        residual_sums[cluster] = residual_sums.get(cluster, 0.0) + (value - mean)
    groups = len(residual_sums)
    meat = sum(s * s for s in residual_sums.values())
    return math.sqrt(groups / (groups - 1) * meat) / n


def test_clustered_stderr_matches_the_formula_written_out():
    values, clusters = five_per_video(40)
    assert clustered_stderr(values, clusters) == pytest.approx(cr1_by_hand(values, clusters),
                                                               rel=1e-12)


def test_clustering_widens_the_interval_when_questions_of_a_video_agree():
    values, clusters = five_per_video(40)
    n = len(values)
    mean = sum(values) / n
    naive = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    interval = clustered_mean(values, clusters)
    assert interval.stderr > 1.5 * naive
    assert interval.low < interval.mean < interval.high
    assert interval.high - interval.low == pytest.approx(2 * 1.959964 * interval.stderr,
                                                         rel=1e-5)
    assert (interval.n, interval.clusters) == (200, 40)


def test_one_cluster_has_no_interval():
    assert math.isnan(clustered_stderr([0.5, 1.0], ["v", "v"]))


def test_paired_difference_of_identical_runs_contains_zero():
    values, clusters = five_per_video(30)
    a = {i: v for i, v in enumerate(values)}
    result = paired_difference(a, dict(a), dict(enumerate(clusters)))
    assert result.difference == 0 and result.low <= 0 <= result.high
    assert result.p_value == 1.0 and not result.significant
    assert "within noise" in describe_difference("BP", result)


def test_paired_difference_of_a_better_run_excludes_zero():
    values, clusters = five_per_video(30)
    a = {i: v for i, v in enumerate(values)}
    b = {i: min(1.0, v + 0.25) if i % 2 else v for i, v in a.items()}
    result = paired_difference(a, b, dict(enumerate(clusters)))
    expected = (sum(b.values()) - sum(a.values())) / len(a)
    assert result.difference == pytest.approx(expected)
    assert 0 < result.low <= result.difference <= result.high
    assert result.p_value < 0.01 and result.significant
    assert result.relative == pytest.approx(sum(b.values()) / sum(a.values()) - 1)
    assert describe_difference("ML", result).startswith("B is ahead of A on ML by")


def test_relative_gain_interval_skips_replicates_where_a_scores_0(recwarn):
    """A run scoring 0 on most videos (a blind model): some replicates draw only those, and
    their relative gain is undefined, not infinite."""
    a = {f"q{i}": (0.5 if i < 2 else 0.0) for i in range(20)}
    b = {q: 0.75 for q in a}
    result = paired_difference(a, b, {q: q for q in a})
    assert result.relative == pytest.approx(0.75 / (1.0 / 20) - 1)
    assert math.isfinite(result.relative_low) and math.isfinite(result.relative_high)
    assert result.relative_low <= result.relative <= result.relative_high
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_paired_difference_uses_only_questions_both_runs_scored():
    a = {"q1": 1.0, "q2": None, "q3": 0.5}
    b = {"q1": 0.5, "q2": 1.0, "q4": 1.0, "q3": 0.5}
    result = paired_difference(a, b, {"q1": "v1", "q2": "v1", "q3": "v2", "q4": "v3"})
    assert result.n == 2 and result.difference == pytest.approx(-0.25)
