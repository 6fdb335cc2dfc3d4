"""E-VAds metrics as lmms-eval aggregates them, and the Markdown run report's arithmetic."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evads_tasks.runs.report import ScoredSample, format_report, model_description, summarize
from evads_tasks.runs.scored_runs import model_info
from evads_tasks.sample.tiny_model import NOTICE_FILE
from evads_tasks.tasks.metrics import (
    JUDGE_METRIC,
    METRICS,
    all_mean,
    count_judge_errors,
    judged_mean,
    sample_metrics,
    total_over_tasks,
)

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
    items: dict[str, list] = {}
    for score, record in ((1.0, JUDGE), (None, FAILED), (0.25, JUDGE), (None, FAILED)):
        for name, value in sample_metrics(score, record, IDS).items():
            items.setdefault(name, []).append(value)
    assert judged_mean(items["evads_r5"]) == pytest.approx((1.0 + 0.25) / 2)  # not / 4
    # ALL beside VALID: a failed judgement counts 0 there, flagged in the sample
    assert all_mean(items["evads_r5_all"]) == pytest.approx((1.0 + 0.25) / 4)
    assert all_mean(items["evads_r2_all"]) == pytest.approx(1 / 4)
    assert [v["judge_failed"] for v in items["evads_r5_all"]] == [False, True, False, True]
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
    # no CI: no reasoning or overall row, never a mean over part of their tasks
    assert set(summary["dimensions"]) == {"Perception"}
    assert summary["missing"] == {"Cognition & Reasoning": ["CI"], "Overall": ["CI"]}
    assert summary["categories"]["Others"]["evads_r5"] == pytest.approx(0.5)
    whole = summarize([*samples, _sample("CI", "Others", 0.25)])
    reasoning = whole["dimensions"]["Cognition & Reasoning"]
    # a task with no judged answer has no mean, so neither has its group (as in lmms-eval)
    assert (reasoning["questions"], reasoning["judged"]) == (3, 2)
    assert math.isnan(reasoning["evads_r5"])
    overall = whole["dimensions"]["Overall"]
    assert (overall["questions"], overall["judge_errors"]) == (5, 1)
    assert math.isnan(overall["evads_r5"])

    text = format_report(_info({"model": "dummy", "model_args": "response=x", "limit": 2},
                               [samples[0].judge]), summary)
    assert "- Overall: not given, the run lacks CI" in text
    assert "| Overall |" not in text
    assert "| Others | 2 | 1 | 1 | 0.5000 |" in text
    assert "| RC Regulatory Compliance | 1 | 0 | 1 | n/a |" in text
    assert "not the paper's LLM judge" in text
    assert "not a real model" in text
    assert "partial run" in text
    assert "size-weighted mean of the task rows" in text


def _info(config: dict, judges: list[str]) -> dict:
    """A run's info as scored_runs.load_run builds it from the results JSON's config."""
    model, random_model = model_info(config)
    return {"source": "r.json", "kind": "lmms-eval run", "model": model,
            "random_model": random_model, "protocol": "evads", "judges": judges,
            "limit": config.get("limit")}


@pytest.mark.parametrize(("limit", "words"), [
    (2.0, "- limit: 2 questions per task (a partial run"),  # lmms-eval stores --limit 2 as 2.0
    (0.25, "- limit: 25% of the questions per task (a partial run"),  # a fraction below 1
])
def test_the_limit_reads_as_lmms_eval_applies_it(limit, words):
    summary = summarize([_sample("BP", "Others", 1.0)])
    text = format_report(_info({"model": "dummy", "model_args": "", "limit": limit},
                               ["test-judge"]), summary)
    assert any(line.startswith(words) for line in text.splitlines()), text
    full = format_report(_info({"model": "dummy", "model_args": "", "limit": None},
                               ["test-judge"]), summary)
    assert "limit" not in full


def test_group_rows_weight_task_means_by_task_size_not_pooled_answers():
    """BP: 4 questions, 1 judged (1.0); CM: 2 questions, both judged (0.0). lmms-eval's group:
    (1.0*4 + 0.0*2) / 6 = 2/3; pooling the 3 judged answers would give 1/3."""
    samples = ([_sample("BP", "Others", 1.0)] + [_sample("BP", "Others", None)] * 3
               + [_sample("CM", "Others", 0.0)] * 2)
    perception = summarize(samples)["dimensions"]["Perception"]
    assert perception["evads_r5"] == pytest.approx(2 / 3)
    assert (perception["questions"], perception["judged"], perception["judge_errors"]) == (6, 3,
                                                                                           3)


def test_the_tiny_random_label_does_not_depend_on_the_working_directory(tmp_path,
                                                                        monkeypatch):
    repo = tmp_path / "repo"
    model = ensure_tiny_notice(repo / "runs" / "models" / "tiny-random-qwen2-5-vl")
    run_dir = repo / "runs" / "eval" / "models__tiny-random-qwen2-5-vl"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative = {"model": "qwen2_5_vl",
                "model_args": f"pretrained={model.relative_to(repo)},device=cpu"}
    assert "tiny RANDOM" in model_description(relative, run_dir)  # found above the run
    moved = {"model": "qwen2_5_vl", "model_args": "pretrained=/gone/tiny-random-qwen2-vl/"}
    assert "tiny RANDOM" in model_description(moved, run_dir)  # its folder name says so
    real = {"model": "qwen2_5_vl", "model_args": "pretrained=Qwen/Qwen2.5-VL-7B-Instruct"}
    assert "tiny RANDOM" not in model_description(real, run_dir)


def ensure_tiny_notice(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / NOTICE_FILE).write_text("tiny random", encoding="utf-8")
    return folder


def write_run(folder: Path, samples: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    results = folder / "20260101_000000_results.json"
    results.write_text(json.dumps({"config": {"model": "dummy", "model_args": ""}}))
    (folder / "20260101_000000_samples_evads_bp.jsonl").write_text(
        "".join(line + "\n" for line in samples), encoding="utf-8")
    return results


GOOD_LINE = json.dumps({JUDGE_METRIC: {**IDS, **JUDGE}})


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "not JSON"),
    (json.dumps({JUDGE_METRIC: {"judge_score": 1.0, "task": "BP"}}), "lacks question_id"),
    (json.dumps({JUDGE_METRIC: {**IDS, **JUDGE, "task": "XX"}}), "unknown task 'XX'"),
    (json.dumps({JUDGE_METRIC: {**IDS, **JUDGE, "judge_score": 0.6}}), "judge_score"),
    (json.dumps({"evads_r5": {}}), "no E-VAds judge record"),
])
def test_a_malformed_sample_log_names_file_and_line(tmp_path, line, message):
    write_run(tmp_path / "run", [GOOD_LINE, line])
    done = report_cli(str(tmp_path / "run"))
    assert done.returncode == 2
    assert "_samples_evads_bp.jsonl, line 2" in done.stderr and message in done.stderr
    assert "Traceback" not in done.stderr


def test_report_since_refuses_an_older_run(tmp_path):
    results = write_run(tmp_path / "run", [GOOD_LINE])
    old = time.time() - 3600
    os.utime(results, (old, old))
    started = int(time.time())
    done = report_cli(str(tmp_path / "run"), "--since", str(started))
    assert done.returncode == 2 and "no lmms-eval *_results.json" in done.stderr
    assert "written since" in done.stderr
    assert report_cli(str(tmp_path / "run"), "--since", str(int(old))).returncode == 0


def test_report_of_a_missing_folder_says_folder_not_found(tmp_path):
    done = report_cli(str(tmp_path / "nonexist"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: folder not found: {tmp_path / 'nonexist'}"
    results = write_run(tmp_path / "run", [GOOD_LINE])
    done = report_cli(str(results))
    assert done.returncode == 2 and "is not a folder" in done.stderr


def report_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evads_tasks", "report", *args],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
