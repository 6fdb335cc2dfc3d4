"""E-VAds metrics as lmms-eval sees them: per-sample values and their aggregations (pure).

Every judged sample yields R5, R3, R2 and G from one judge score
(:mod:`evads_tasks.scoring`). A sample whose judge failed carries no score: it
is counted in ``judge_errors`` and left out of the means, never scored as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from .scoring import mg_score, r2, r3, r5

SCORE_KEY = "score"  # lmms-eval's `score_key`: the number its CLT stderr reads from a dict
METRICS: dict[str, Callable[[float], float]] = {
    "evads_r5": r5, "evads_r3": r3, "evads_r2": r2, "evads_g": mg_score,
}
METRIC_LABELS: dict[str, str] = {
    "evads_r5": "R5", "evads_r3": "R3", "evads_r2": "R2", "evads_g": "G",
}
JUDGE_METRIC = "judge_errors"


def sample_metrics(score: float | None, judge_record: Mapping, ids: Mapping) -> dict[str, dict]:
    """The values one sample contributes to every metric of a task.

    ``ids`` (question, video, task, category) go into every value so the samples
    log alone supports breakdowns; ``judge_record`` (raw reply, judge name, error)
    is the value of ``judge_errors``, so each logged sample shows it once.
    """
    values = {}
    for name, metric in METRICS.items():
        value = dict(ids)
        if score is not None:
            value[SCORE_KEY] = metric(score)
        values[name] = value
    values[JUDGE_METRIC] = {**ids, **judge_record}
    return values


def judged_scores(items: Iterable[Mapping]) -> list[float]:
    """The metric values of the samples the judge scored."""
    return [float(item[SCORE_KEY]) for item in items if item.get(SCORE_KEY) is not None]


def judged_mean(items: Sequence[Mapping]) -> float:
    """Mean over judged samples only; NaN when none was judged (never 0)."""
    scores = judged_scores(items)
    return sum(scores) / len(scores) if scores else math.nan


def count_judge_errors(items: Sequence[Mapping]) -> int:
    """How many samples the judge failed on (their scores are missing, not zero)."""
    return sum(1 for item in items if item.get("error") is not None)


def total_over_tasks(metrics: Sequence[float], sizes: Sequence[int],
                     weight_by_size: bool = False) -> float:
    """Group aggregation for counts (lmms-eval's group signature): the sum over subtasks."""
    return float(sum(metrics))
