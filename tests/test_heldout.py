"""Held-out evaluation: the guard against scoring on training videos, the validation log
entries (per task and overall), and the paired before/after comparison and its report."""

from __future__ import annotations

import json

import pytest
from transformers import TrainerState

from evads_rl.__main__ import main
from evads_rl.before_after import SCOPES, format_report, paired_comparison
from evads_rl.benchmark_runs import RunModel, ScoredModel
from evads_rl.callbacks import StepLogCallback, combined_eval, task_eval_metrics
from evads_rl.config import ConfigError, load_config
from evads_rl.heldout import HeldOut, check_heldout
from evads_tasks.core.annotations import EvadsRecord
from evads_tasks.core.annotations.overlap import find_overlap
from evads_tasks.core.scoring import mg_score
from evads_tasks.runs.scored_runs import ScoredRun, ScoredSample

TASKS = ("BP", "CM", "ML", "CI", "RC")


def _records(videos: range, split: str = "test") -> list[EvadsRecord]:
    return [EvadsRecord(question_id=f"v{v}_q{n}", video_id=f"v{v}",
                        video_file=f"../videos/v{v}.mp4", question="视频中的价格是多少？",
                        answer="29.9元", task=task, task_inferred=False, split=split)
            for v in videos for n, task in enumerate(TASKS)]


def test_an_overlap_names_the_counts_and_the_first_ids():
    overlap = find_overlap(_records(range(0, 10)), _records(range(3, 20), "rl"),
                           "data.eval test.parquet", "data.rl rl.parquet")
    assert overlap.videos == tuple(f"v{v}" for v in sorted(range(3, 10), key=str))
    assert len(overlap.questions) == 35
    assert overlap.describe() == (
        "data.eval test.parquet shares 7 video(s) (v3, v4, v5, v6, v7, ... 2 more) and 35 "
        "question id(s) (v3_q0, v3_q1, v3_q2, v3_q3, v3_q4, ... 30 more) with data.rl "
        "rl.parquet")
    assert not find_overlap(_records(range(0, 3)), _records(range(3, 6), "rl"))


def _sample_args(sample_dir, tmp_path, evaluation: str, *extra: str) -> list[str]:
    annotations = sample_dir / "annotations"
    return ["rl", "--output-dir", str(tmp_path / "run"),
            "--set", f"data.sft={annotations / 'sft.parquet'}",
            "--set", f"data.rl={annotations / 'rl.parquet'}",
            "--set", f"data.video_dir={sample_dir / 'videos'}",
            "--set", f"data.eval={annotations / evaluation}", *extra]


@pytest.mark.parametrize("evaluation, named", [
    ("rl.parquet", "shares 2 video(s) (ad_11, ad_12) and 10 question id(s)"),
    ("sft.parquet", "shares 2 video(s) (ad_09, ad_10) and 10 question id(s)"),
    ("normalized.jsonl", "shares 2 video(s) (ad_09, ad_10)"),
])
def test_a_training_file_as_evaluation_file_stops_the_run_before_anything(
        sample_dir, tmp_path, capsys, evaluation, named):
    with pytest.raises(SystemExit) as stopped:
        main(_sample_args(sample_dir, tmp_path, evaluation))
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and named in err
    assert "--set data.allow_overlap=true" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing decoded, trained or written


def test_allowed_overlap_is_said_first_in_every_report(sample_dir, tmp_path):
    annotations = sample_dir / "annotations"
    sets = [f"data.sft={annotations / 'sft.parquet'}", f"data.rl={annotations / 'rl.parquet'}",
            f"data.eval={annotations / 'rl.parquet'}"]
    with pytest.raises(ConfigError, match="allow_overlap must be true or false"):
        check_heldout(load_config("cpu_smoke", [*sets, "data.allow_overlap=maybe"]))
    heldout = check_heldout(load_config("cpu_smoke", [*sets, "data.allow_overlap=true"]))
    assert heldout.warning.startswith("NOT HELD OUT (--set data.allow_overlap=true): data.eval ")
    assert check_heldout(load_config("cpu_smoke", sets[:2] + [
        f"data.eval={annotations / 'test.parquet'}"])).warning is None
    # the training log: every entry carries it
    log = StepLogCallback(tmp_path, "grpo", heldout_warning=heldout.warning)
    log.on_log(None, TrainerState(global_step=1), None, logs={"loss": 0.5})
    entry = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert entry["heldout_warning"] == heldout.warning
    # the before/after report: its first line
    run = _run([1.0] * 10)
    scored = [ScoredModel(RunModel(name, name), run, 1.0, 0) for name in ("base", "grpo")]
    report = format_report(scored, {"grpo": paired_comparison(run, run)},
                           _records(range(2)), "rl.parquet", heldout, {"prompt": "reasoning"})
    assert report.splitlines()[0] == heldout.warning


def test_one_validation_entry_per_evaluation_per_task_and_overall(tmp_path, capsys):
    """TRL evaluates each task's dataset on its own (one log event each); the log gets one
    entry: every metric per task and overall, weighted by the tasks' question counts."""
    sizes = {"BP": 1, "CM": 3}
    assert task_eval_metrics("BP", {"eval_BP_loss": 0.5, "eval_reward": 0.25,
                                    "epoch": 1.0}) == {"loss": 0.5, "reward": 0.25}
    log = StepLogCallback(tmp_path, "grpo", eval_sizes=sizes)
    state = TrainerState(global_step=0)
    for task, reward, runtime in (("BP", 1.0, 2.0), ("CM", 0.2, 1.0)):
        log.on_log(None, state, None, logs={f"eval_{task}_loss": 0.0,
                                            f"eval_{task}_runtime": runtime,
                                            f"eval_{task}_samples_per_second": 3.0,
                                            "eval_reward": reward, "epoch": 0.0})
    entries = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text()
               .splitlines()]
    assert len(entries) == 1 and log.last_eval_step == 0
    entry = entries[0]
    assert (entry["eval_BP_reward"], entry["eval_CM_reward"]) == (1.0, 0.2)
    assert entry["eval_reward"] == pytest.approx((1 * 1.0 + 3 * 0.2) / 4)
    assert entry["eval_runtime"] == 3.0 and "eval_samples_per_second" not in entry
    assert "[grpo eval step 0] reward=0.4 (BP 1 CM 0.2)" in capsys.readouterr().out
    assert combined_eval({"BP": {"reward": None}}, {"BP": 1}) == {"eval_BP_reward": None}


def _run(scores: list[float | None]) -> ScoredRun:
    records = _records(range(len(scores) // 5))
    return ScoredRun([ScoredSample(r.question_id, r.task, "Others", score, "loopback",
                                   video_id=r.video_id)
                      for r, score in zip(records, scores, strict=True)],
                     {"model": "m", "judges": ["loopback"]})


def test_the_paired_comparison_per_task_dimension_and_overall():
    base = _run([0.0, 0.25, 0.5, 0.5, 0.0, 0.25, 0.25, 0.5, 0.0, None])
    trained = _run([1.0, 0.25, 0.75, 0.5, 0.5, 0.5, 0.25, 1.0, 0.25, 1.0])
    result = paired_comparison(base, trained)
    assert set(result) == set(SCOPES)
    overall = result["overall"]["R5"]
    judged = range(9)  # the last question was not judged for the base: left out
    before = [base.samples[i].score for i in judged]
    after = [trained.samples[i].score for i in judged]
    assert overall.n == 9 and overall.clusters == 2
    assert overall.difference == pytest.approx(sum(after) / 9 - sum(before) / 9)
    assert overall.relative == pytest.approx(sum(after) / sum(before) - 1)
    assert overall.low <= overall.difference <= overall.high
    bp = result["BP"]["G"]  # questions 0 and 5
    assert bp.b_mean == pytest.approx((mg_score(1.0) + mg_score(0.5)) / 2)
    assert bp.a_mean == pytest.approx(mg_score(0.25) / 2)
    reasoning = result["Cognition & Reasoning"]["R2"]
    assert reasoning.n == 5 and reasoning.b_mean == pytest.approx(1 / 5)
    assert result["RC"]["R5"].n == 1  # the unjudged RC question of video 1 is left out
    empty = paired_comparison(_run([None] * 5 + [0.0] * 5), _run([0.5] * 10))
    assert empty["BP"]["R5"].n == 1 and empty["overall"]["R5"].clusters == 1
    assert HeldOut().warning is None
