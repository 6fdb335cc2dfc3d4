"""Judge agreement figures (evads_tasks.core.agreement) against sklearn/scipy and hand-computed
fixtures: quadratic-weighted kappa, Spearman, exact agreement, the bootstrap mean shift."""

from __future__ import annotations

import math
import random

import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from evads_tasks.core.agreement import (
    confusion,
    draw_confusion,
    exact_agreement,
    judge_agreement,
    mean_shift,
    quadratic_kappa,
    spearman,
)
from evads_tasks.core.scoring import LEVELS


def _judge_pair(seed: int, n: int = 300) -> tuple[list[float], list[float]]:
    """Judge A's levels and a judge B that mostly agrees, sometimes a level or two off."""
    rng = random.Random(seed)
    a = [rng.choice(LEVELS) for _ in range(n)]
    b = [min(1.0, max(0.0, x + rng.choice([-0.25, 0, 0, 0, 0.25, 0.5]))) for x in a]
    return a, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kappa_and_spearman_match_sklearn_and_scipy(seed):
    a, b = _judge_pair(seed)
    # sklearn takes class labels, not floats: the level index, over all five levels
    index = {level: i for i, level in enumerate(LEVELS)}
    expected = cohen_kappa_score([index[x] for x in a], [index[y] for y in b],
                                 weights="quadratic", labels=list(range(5)))
    assert quadratic_kappa(a, b) == pytest.approx(expected, abs=1e-12)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert exact_agreement(a, b) == sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def test_an_unused_level_keeps_the_five_level_weights():
    a, b = [0.0, 0.25, 1.0, 1.0], [0.0, 0.5, 1.0, 0.75]  # nobody gave 0.5 in A, 0.25 in B
    labels = [0, 1, 2, 3, 4]
    expected = cohen_kappa_score([round(x * 4) for x in a], [round(y * 4) for y in b],
                                 weights="quadratic", labels=labels)
    assert quadratic_kappa(a, b) == pytest.approx(expected)


def test_official_scores_off_the_levels_use_the_distinct_scores_seen():
    a, b = [0.6, 1.0, 2.0, 0.6, 0.3], [0.6, 2.0, 2.0, 1.0, 0.3]
    seen = sorted(set(a) | set(b))
    expected = cohen_kappa_score([seen.index(x) for x in a], [seen.index(y) for y in b],
                                 weights="quadratic")
    assert quadratic_kappa(a, b) == pytest.approx(expected)


def test_hand_computed_fixture():
    # 2x2 on levels 0 and 1 (indices 0 and 4 of five: weight 16 off the diagonal)
    a, b = [0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]
    # observed off-diagonal: one (0 -> 1); expected: marginals A (2, 2), B (1, 3) over 4:
    # cell (0, 1) = 2*3/4 = 1.5, cell (1, 0) = 2*1/4 = 0.5 -> kappa = 1 - 16*1 / (16*2) = 0.5
    assert quadratic_kappa(a, b) == pytest.approx(0.5)
    # ranks A: 1.5 1.5 3.5 3.5 (centred -1 -1 1 1); B: 1 3 3 3 (centred -1.5 .5 .5 .5):
    # covariance 2, squares 4 and 3 -> rho = 2 / sqrt(12) = 0.5774
    assert spearman(a, b) == pytest.approx(1 / math.sqrt(3))
    assert exact_agreement(a, b) == 0.75
    assert confusion(a, b) == (list(LEVELS), [[1, 0, 0, 0, 1], [0] * 5, [0] * 5, [0] * 5,
                                              [0, 0, 0, 0, 2]])


def test_undefined_values_are_nan_never_zero():
    assert math.isnan(quadratic_kappa([], []))
    assert math.isnan(spearman([0.5], [0.5]))
    assert math.isnan(spearman([0.5, 0.5, 0.5], [0.0, 0.5, 1.0]))  # A constant
    assert math.isnan(quadratic_kappa([0.5, 0.5], [0.5, 0.5]))      # all chance
    assert quadratic_kappa([0.0, 0.5, 1.0], [0.0, 0.5, 1.0]) == 1.0
    assert spearman([0.0, 0.5, 1.0], [1.0, 0.5, 0.0]) == pytest.approx(-1.0)
    shift = mean_shift([], [])
    assert shift.n == 0 and math.isnan(shift.shift) and math.isnan(shift.low)
    with pytest.raises(ValueError, match="differ in length"):
        exact_agreement([0.0], [])


def test_bootstrap_shift_is_reproducible_and_brackets_the_shift():
    a, b = _judge_pair(3)
    shift = mean_shift(a, b)
    assert shift.shift == pytest.approx(sum(b) / len(b) - sum(a) / len(a))
    assert shift.low < shift.shift < shift.high
    assert shift == mean_shift(a, b)  # fixed seed
    # the interval is about 2 * 1.96 standard errors of the paired mean difference
    d = [y - x for x, y in zip(a, b, strict=True)]
    mean = sum(d) / len(d)
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d))
    assert shift.high - shift.low == pytest.approx(2 * 1.96 * se, rel=0.1)
    constant = mean_shift([0.5] * 10, [0.75] * 10)
    assert (constant.shift, constant.low, constant.high) == pytest.approx((0.25, 0.25, 0.25))


def test_judge_agreement_and_the_confusion_png(tmp_path):
    a, b = _judge_pair(4, n=50)
    stats = judge_agreement(a, b)
    assert stats["pairs"] == 50
    assert stats["kappa"] == quadratic_kappa(a, b) and stats["spearman"] == spearman(a, b)
    path = draw_confusion(a, b, tmp_path / "confusion.png", "A by B")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert draw_confusion([], [], tmp_path / "none.png", "no pairs") is None
