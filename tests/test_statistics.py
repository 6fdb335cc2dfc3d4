"""Clustered intervals and paired comparisons (evads_tasks.core.statistics), checked against
computations written out independently here."""

from __future__ import annotations

import math
import random

import pytest

from evads_tasks.core.statistics import (
    Stratum,
    clustered_mean,
    clustered_stderr,
    describe_difference,
    paired_difference,
    weighted_mean_of_means,
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


def test_relative_gain_over_a_run_scoring_0_on_most_videos_warns_of_nothing(recwarn):
    """A run scoring 0 on most videos (a blind model): about 12% of the replicates draw only
    those, so the gain's upper bound is unbounded, said without a RuntimeWarning."""
    a = {f"q{i}": (0.5 if i < 2 else 0.0) for i in range(20)}
    b = {q: 0.75 for q in a}
    result = paired_difference(a, b, {q: q for q in a})
    assert result.relative == pytest.approx(0.75 / (1.0 / 20) - 1)
    assert math.isfinite(result.relative_low) and result.relative_high == math.inf
    assert result.relative_low <= result.relative <= result.relative_high
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_paired_difference_uses_only_questions_both_runs_scored():
    a = {"q1": 1.0, "q2": None, "q3": 0.5}
    b = {"q1": 0.5, "q2": 1.0, "q4": 1.0, "q3": 0.5}
    result = paired_difference(a, b, {"q1": "v1", "q2": "v1", "q3": "v2", "q4": "v3"})
    assert result.n == 2 and result.difference == pytest.approx(-0.25)


def linearised_by_hand(tasks: list[tuple[list[float], list[str], float]]) -> float:
    """The CR1 standard error of a weight-averaged mean of task means, written as loops: item
    i of task t moves the mean by w_t / sum(w) * (x_i - mean_t) / n_t; sum that per video."""
    total = sum(weight for _, _, weight in tasks)
    per_video: dict[str, float] = {}
    for values, videos, weight in tasks:
        mean = sum(values) / len(values)
        for value, video in zip(values, videos, strict=True):
            per_video[video] = per_video.get(video, 0.0) + weight / total * (value - mean) / len(
                values)
    groups = len(per_video)
    return math.sqrt(groups / (groups - 1) * sum(s * s for s in per_video.values()))


def test_a_group_of_equal_tasks_is_the_pooled_mean_clustered_by_video():
    """One question per video in each of five equal tasks (E-VAds' design): the size-weighted
    mean of task means is the pooled mean, and its clustered error the pooled CR1's."""
    values, clusters = five_per_video(30)
    tasks = [Stratum(values[t::5], clusters[t::5], 30) for t in range(5)]
    group = weighted_mean_of_means(tasks)
    assert group.mean == pytest.approx(sum(values) / len(values))
    assert group.stderr == pytest.approx(cr1_by_hand(values, clusters), rel=1e-12)
    assert (group.n, group.clusters) == (150, 30)
    # treating the tasks as independent (lmms-eval's pooled_sample_stderr) understates it
    naive = math.sqrt(sum((v - group.mean) ** 2 for v in values) / (len(values) - 1)
                      / len(values))
    assert group.stderr > 1.5 * naive


def test_a_group_with_unequal_judged_counts_matches_the_formula_written_out():
    values, clusters = five_per_video(20)
    rng = random.Random(3)
    tasks = []
    for t in range(3):  # some questions failed: fewer values than the task's size
        kept = [i for i in range(t, len(values), 3) if rng.random() > 0.2]
        tasks.append(([values[i] for i in kept], [clusters[i] for i in kept],
                      float(len(range(t, len(values), 3)))))
    group = weighted_mean_of_means([Stratum(*task) for task in tasks])
    total = sum(w for _, _, w in tasks)
    assert group.mean == pytest.approx(sum(w * sum(v) / len(v) for v, _, w in tasks) / total)
    assert group.stderr == pytest.approx(linearised_by_hand(tasks), rel=1e-12)
    one = weighted_mean_of_means([Stratum(values, clusters, 7.0)])
    assert (one.mean, one.stderr) == pytest.approx((clustered_mean(values, clusters).mean,
                                                    cr1_by_hand(values, clusters)))
    assert math.isnan(weighted_mean_of_means([Stratum([], [], 4), Stratum([1.0], ["v"], 1)]).mean)


def test_the_relative_gain_over_a_zero_resample_is_unbounded_not_nan():
    """A scores 0 on four of six videos: about (4/6)^6 = 9% of resamples hold only those, so
    the gain's 97.5th percentile is infinite (the old interpolation gave NaN)."""
    a = {f"q{i}": 0.0 if i < 8 else 0.25 for i in range(12)}
    b = {q: 1.0 for q in a}
    result = paired_difference(a, b, {f"q{i}": f"v{i // 2}" for i in range(12)})
    assert result.relative == pytest.approx(1.0 / (1 / 12) - 1)
    assert result.relative_low > 0 and result.relative_high == math.inf
