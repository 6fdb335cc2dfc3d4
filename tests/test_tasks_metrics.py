"""E-VAds metrics as lmms-eval aggregates them, and the Markdown run report's arithmetic."""

from __future__ import annotations

import math

import pytest

from evads_tasks.metrics import (
    JUDGE_METRIC,
    METRICS,
    count_judge_errors,
    judged_mean,
    sample_metrics,
    total_over_tasks,
)
from evads_tasks.run_report import ScoredSample, format_report, summarize

IDS = {"question_id": "q1", "video_id": "v1", "task": "BP", "category": "Personal Care"}
JUDGE = {"judge": "test-judge", "raw": "Answer: 0.75", "error": None, "cached": False,
         "judge_score": 0.75, "judged_answer": "it is red"}
FAILED = {"judge": "test-judge", "raw": None, "error": "HTTP 500 after 3 tries", "cached": False,
          "judge_score": None, "judged_answer": "it is red"}


def test_one_judge_score_gives_every_metric_with_ids():
    values = sample_metrics(0.75, JUDGE, IDS)
    assert {name: values[name]["score"] for name in METRICS} == {
        "evads_r5": 0.75, "evads_r3": 0.5, "evads_r2": 0.0, "evads_g": pytest.approx(1.25 / 3)}
    assert all(values[name]["question_id"] == "q1" for name in values)
    assert values[JUDGE_METRIC]["raw"] == "Answer: 0.75"
    assert values[JUDGE_METRIC]["judge"] == "test-judge"


def test_judge_errors_are_counted_and_left_out_of_the_means():
    items = {name: [] for name in (*METRICS, JUDGE_METRIC)}
    for score, record in ((1.0, JUDGE), (None, FAILED), (0.25, JUDGE), (None, FAILED)):
        for name, value in sample_metrics(score, record, IDS).items():
            items[name].append(value)
    assert judged_mean(items["evads_r5"]) == pytest.approx((1.0 + 0.25) / 2)  # not / 4
    assert judged_mean(items["evads_r3"]) == pytest.approx(0.5)
    assert judged_mean(items["evads_r2"]) == pytest.approx(0.5)
    assert count_judge_errors(items[JUDGE_METRIC]) == 2
    assert "score" not in items["evads_r5"][1]  # a failed sample has no score, not a 0


def test_all_failed_is_nan_not_zero():
    values = [sample_metrics(None, FAILED, IDS)["evads_r5"]] * 3
    assert math.isnan(judged_mean(values))


def test_group_judge_errors_are_a_total():
    assert total_over_tasks([2.0, 0.0, 3.0], [10, 10, 20], True) == 5.0


def test_sample_metrics_rejects_a_score_off_the_five_levels():
    with pytest.raises(ValueError, match="one of"):
        sample_metrics(0.6, JUDGE, IDS)


def _sample(task, category, score):
    return ScoredSample(question_id=f"{task}-{category}-{score}", task=task, category=category,
                        score=score, judge="similarity (offline fallback, not the paper's judge)")


def test_report_rows_per_task_dimension_overall_and_category():
    samples = [_sample("BP", "Personal Care", 1.0), _sample("CM", "Others", 0.5),
               _sample("RC", "Others", None), _sample("ML", "Personal Care", 0.0)]
    summary = summarize(samples)
    assert list(summary["tasks"]) == ["BP", "CM", "ML", "RC"]
    assert math.isnan(summary["tasks"]["RC"]["evads_r5"])
    assert summary["tasks"]["RC"]["judge_errors"] == 1
    perception = summary["dimensions"]["Perception"]
    assert perception["evads_r5"] == pytest.approx(0.75)
    assert perception["evads_r2"] == pytest.approx(0.5)
    reasoning = summary["dimensions"]["Cognition & Reasoning"]
    assert (reasoning["questions"], reasoning["judged"], reasoning["evads_r5"]) == (2, 1, 0.0)
    overall = summary["dimensions"]["Overall"]
    assert (overall["questions"], overall["judge_errors"]) == (4, 1)
    assert overall["evads_r5"] == pytest.approx(0.5)
    assert summary["categories"]["Others"]["evads_r5"] == pytest.approx(0.5)

    text = format_report({"config": {"model": "dummy", "model_args": "response=x", "limit": 2}},
                         summary, [samples[0].judge], source="r.json")
    assert "| Others | 2 | 1 | 1 | 0.5000 |" in text
    assert "| RC Regulatory Compliance | 1 | 0 | 1 | n/a |" in text
    assert "not the paper's LLM judge" in text
    assert "not a real model" in text
    assert "partial run" in text
