"""verl: the data converter, the launch script's overrides and the reward adapter on rows of
the released RL parquet, scored by the loopback judge."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from judge_server import JudgeServer
from paths import RL_PARQUET

from evads_rl import verl_reward
from evads_rl.__main__ import main
from evads_rl.config import CONFIG_DIR
from evads_tasks.core.annotations import AnnotationError


@pytest.fixture
def judge_env(tmp_path, monkeypatch):
    """A loopback judge (deterministic reference-overlap stand-in) configured through the env."""
    with JudgeServer(latency_s=0.3) as server:
        monkeypatch.setenv("EVADS_JUDGE_BASE_URL", server.url)
        monkeypatch.setenv("EVADS_JUDGE_MODEL", "loopback-fake-judge")
        monkeypatch.setenv("EVADS_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.delenv("EVADS_JUDGE", raising=False)
        monkeypatch.setattr(verl_reward, "_scorer", None)  # a fresh process-wide scorer
        yield server


@pytest.fixture(scope="module")
def rl_rows():
    if not RL_PARQUET.is_file():
        pytest.skip("shared RL parquet not present")
    import pyarrow.parquet as pq

    return pq.read_table(RL_PARQUET).slice(0, 8).to_pylist()


def _solution(row, answer: str | None = None) -> str:
    clues = row["reward_model"]["verifier"][0]["clues"]
    answer = row["reward_model"]["answer"] if answer is None else answer
    return f"<think>{clues}</think> <answer>{answer}</answer>"


def test_rows_as_released_are_looked_up_by_id(rl_rows, judge_env, monkeypatch):
    monkeypatch.setenv("EVADS_ANNOTATIONS", str(RL_PARQUET))
    row = rl_rows[0]
    args = (row["data_source"], _solution(row), row["reward_model"]["ground_truth"])
    assert set(row["extra_info"]) == {"id", "video_path"}
    best = verl_reward.compute_score(*args, extra_info=row["extra_info"])
    assert best == {"score": pytest.approx(2.0), "answer_g": 1.0, "trace_g": 1.0,
                    "format": 1.0, "judge_errors": 0, "judge_requests": 2}
    wrong = verl_reward.compute_score(row["data_source"], _solution(row, "完全无关的回答"),
                                      row["reward_model"]["ground_truth"], row["extra_info"])
    assert wrong["answer_g"] == 0.0 and wrong["score"] == pytest.approx(1.2)
    # The judge saw the question and clues found by id, which the row itself does not carry.
    prompt = judge_env.requests[0]["messages"][-1]["content"]
    question = re.search(r"Question:\s*(.+)", row["prompt"][0]["content"]).group(1).strip()
    assert question in prompt and row["reward_model"]["verifier"][0]["clues"] in prompt


def test_batch_entry_judges_the_batch_concurrently(rl_rows, judge_env, monkeypatch):
    monkeypatch.setenv("EVADS_ANNOTATIONS", str(RL_PARQUET))
    verl_reward.compute_score(rl_rows[0]["data_source"], "warm-up", "<answer>x</answer>",
                              rl_rows[0]["extra_info"])  # loads the annotations once
    start = time.perf_counter()
    scores = verl_reward.compute_score_batch(
        [r["data_source"] for r in rl_rows], [_solution(r) for r in rl_rows],
        [r["reward_model"]["ground_truth"] for r in rl_rows], [r["extra_info"] for r in rl_rows])
    elapsed = time.perf_counter() - start
    assert [s["score"] for s in scores] == [pytest.approx(2.0)] * 8
    assert elapsed < 1.5, f"{elapsed:.2f}s for 16 judge calls of 0.3 s each"


def test_inline_extra_info_needs_no_annotation_file(judge_env, monkeypatch):
    monkeypatch.delenv("EVADS_ANNOTATIONS", raising=False)
    extra = {"id": "x1", "question": "价格是多少？", "clues": "第3秒显示29.9元",
             "meta_info": "Time 3s: OCR Text: [29.9元]"}
    result = verl_reward.compute_score("EVAdsBench", "<answer>29.9元</answer>",
                                       "<answer>29.9元</answer>", extra)
    assert result["answer_g"] == 1.0 and result["trace_g"] == 0.0 and result["format"] == 0.0
    assert result["score"] == pytest.approx(0.8)


def test_unknown_id_and_missing_annotations_fail_clearly(rl_rows, judge_env, monkeypatch):
    monkeypatch.delenv("EVADS_ANNOTATIONS", raising=False)
    with pytest.raises(AnnotationError, match="EVADS_ANNOTATIONS"):
        verl_reward.compute_score("EVAdsBench", "x", "<answer>y</answer>", {"id": "1"})
    monkeypatch.setenv("EVADS_ANNOTATIONS", str(RL_PARQUET))
    with pytest.raises(AnnotationError, match="no-such-id"):
        verl_reward.compute_score("EVAdsBench", "x", "<answer>y</answer>", {"id": "no-such-id"})


def test_weights_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("EVADS_REWARD_WEIGHTS", "answer=1,trace=0,format=0.5")
    assert verl_reward.weights_from_env().as_list() == [1.0, 0.0, 0.5]
    monkeypatch.setenv("EVADS_REWARD_WEIGHTS", "answer:1")
    with pytest.raises(ValueError, match="EVADS_REWARD_WEIGHTS"):
        verl_reward.weights_from_env()


def test_judge_name_is_printed_once_per_process(rl_rows, judge_env, monkeypatch, capsys):
    monkeypatch.setenv("EVADS_ANNOTATIONS", str(RL_PARQUET))
    row = rl_rows[0]
    for _ in range(2):
        result = verl_reward.compute_score(row["data_source"], _solution(row),
                                           row["reward_model"]["ground_truth"], row["extra_info"])
    printed = [line for line in capsys.readouterr().out.splitlines() if "judge:" in line]
    assert len(printed) == 1 and printed[0].startswith("[evads verl reward] judge: "
                                                       "loopback-fake-judge @ ")
    assert all(isinstance(value, (int, float)) for value in result.values())  # verl averages them


def _read(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def test_verl_data_writes_videos_as_verl_reads_them(sample_dir, tmp_path):
    source = sample_dir / "annotations" / "rl.parquet"
    out = tmp_path / "train.parquet"
    assert main(["verl-data", str(source), "--video-dir", str(sample_dir / "videos"),
                 "--out", str(out)]) == 0
    rows, released = _read(out), _read(source)
    assert len(rows) == len(released)
    for row, original in zip(rows, released, strict=True):
        # verl's RLHFDataset: `for video in row["videos"]: process_video(video)`, which needs
        # a dict with a "video" key; qwen-vl-utils opens that path.
        assert isinstance(row["videos"], list) and len(row["videos"]) == 1
        video = Path(row["videos"][0]["video"])
        assert video.is_absolute() and video.is_file()
        assert video.name == Path(original["videos"]).name
        assert row["prompt"][0]["content"] == original["prompt"][0]["content"]
        assert row["prompt"][0]["content"].count("<video>") == 1
        assert row["reward_model"] == original["reward_model"]
        extra = row["extra_info"]
        assert (extra["id"], extra["video_path"]) == (original["extra_info"]["id"],
                                                     original["extra_info"]["video_path"])
        assert extra["clues"] == original["reward_model"]["verifier"][0]["clues"]
        assert extra["question"] in row["prompt"][0]["content"]
        assert extra["meta_info"] and extra["accuracy_ratio"] == 1.0
    assert [r["extra_info"]["index"] for r in rows] == list(range(len(rows)))


def test_verl_data_from_the_test_schema_and_bad_input(sample_dir, tmp_path, capsys):
    out = tmp_path / "val.parquet"
    assert main(["verl-data", str(sample_dir / "annotations" / "test.parquet"), "--video-dir",
                 str(sample_dir / "videos"), "--out", str(out)]) == 0
    row = _read(out)[0]
    assert row["prompt"][0]["content"].startswith("<video>")
    assert row["reward_model"]["ground_truth"].startswith("<answer>")
    assert Path(row["videos"][0]["video"]).is_file()
    empty = tmp_path / "videos"
    empty.mkdir()
    assert main(["verl-data", str(sample_dir / "annotations" / "rl.parquet"), "--video-dir",
                 str(empty), "--out", str(tmp_path / "x.parquet")]) == 2
    error = capsys.readouterr().err
    assert "rl.parquet" in error and "row 0" in error and "not found" in error
    assert not (tmp_path / "x.parquet").exists()


def test_converted_rows_are_scored_without_an_annotation_lookup(sample_dir, tmp_path, judge_env,
                                                                monkeypatch):
    monkeypatch.delenv("EVADS_ANNOTATIONS", raising=False)
    out = tmp_path / "train.parquet"
    main(["verl-data", str(sample_dir / "annotations" / "rl.parquet"), "--video-dir",
          str(sample_dir / "videos"), "--out", str(out)])
    rows = _read(out)[:3]
    scores = verl_reward.compute_score_batch(
        [r["data_source"] for r in rows], [_solution(r) for r in rows],
        [r["reward_model"]["ground_truth"] for r in rows], [r["extra_info"] for r in rows])
    assert [s["score"] for s in scores] == [pytest.approx(2.0)] * 3
    # The batch is judged concurrently: requests arrive in any order.
    prompts = [request["messages"][-1]["content"] for request in judge_env.requests]
    for row in rows:
        assert any(row["extra_info"]["question"] in prompt for prompt in prompts)


RECORDER = """import json, os, sys
with open(os.environ["VERL_ARGV_RECORD"], "w") as f:
    json.dump(sys.argv[1:], f)
"""


def _run_script(sample_dir: Path, tmp_path: Path, **env: str) -> dict[str, str]:
    """Run verl_grpo.sh with a recorder standing in for verl's main_ppo (verl needs GPUs)."""
    fake = tmp_path / "fake_verl"
    (fake / "verl" / "trainer").mkdir(parents=True)
    (fake / "verl" / "__init__.py").write_text("")
    (fake / "verl" / "trainer" / "__init__.py").write_text("")
    (fake / "verl" / "trainer" / "main_ppo.py").write_text(RECORDER)
    data = tmp_path / "E-VAds"
    (data / "annotations").mkdir(parents=True)
    shutil.copy(sample_dir / "annotations" / "rl.parquet",
                data / "annotations" / "EVAds_RL.parquet")
    (data / "videos").symlink_to(sample_dir.resolve() / "videos")
    record = tmp_path / "argv.json"
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(
        ["bash", str(CONFIG_DIR / "verl_grpo.sh"), "trainer.total_epochs=1"], check=True,
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "EVADS_DATA": str(data), "MODEL": "/models/sft",
             "WORK": str(tmp_path / "work"), "PYTHON": sys.executable,
             "VERL_ARGV_RECORD": str(record),
             "PYTHONPATH": os.pathsep.join([str(fake), str(repo)]), **env})
    return dict(arg.split("=", 1) for arg in json.loads(record.read_text()))


def test_verl_script_trains_on_converted_files(sample_dir, tmp_path):
    overrides = _run_script(sample_dir, tmp_path)
    assert overrides["data.video_key"] == "videos" and overrides["data.prompt_key"] == "prompt"
    train = Path(overrides["data.train_files"])
    assert train == tmp_path / "work" / "train.parquet"
    first = _read(train)[0]
    assert Path(first["videos"][0]["video"]).is_file()
    assert overrides["actor_rollout_ref.model.path"] == "/models/sft"
    assert overrides["reward_model.reward_manager"] == "batch"
    reward_file = Path(overrides["custom_reward_function.path"])
    assert reward_file.is_file()
    assert hasattr(verl_reward, overrides["custom_reward_function.name"])
    assert overrides["algorithm.adv_estimator"] == "grpo"
    # No VAL: validation is off rather than run on the training rows.
    assert overrides["trainer.test_freq"] == "-1"
    assert overrides["trainer.val_before_train"] == "False"
    assert overrides["trainer.total_epochs"] == "1"  # extra overrides are passed on


def test_verl_script_validates_on_a_separate_file(sample_dir, tmp_path):
    overrides = _run_script(sample_dir, tmp_path,
                            VAL=str(sample_dir / "annotations" / "test.parquet"))
    val = Path(overrides["data.val_files"])
    assert val == tmp_path / "work" / "val.parquet"
    assert val != Path(overrides["data.train_files"])
    assert len(_read(val)) == len(_read(sample_dir / "annotations" / "test.parquet"))
    assert overrides["trainer.test_freq"] != "-1"


def test_verl_data_on_the_released_rl_split(rl_rows, tmp_path):
    import pyarrow.parquet as pq

    names = {Path(v).name for v in pq.read_table(RL_PARQUET, columns=["videos"]).column(0)
             .to_pylist()}
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in names:  # placeholders: the converter resolves paths, verl decodes them later
        (videos / name).touch()
    out = tmp_path / "train.parquet"
    assert main(["verl-data", str(RL_PARQUET), "--video-dir", str(videos), "--out", str(out)]) == 0
    rows = _read(out)
    assert len(rows) == 980
    assert rows[0]["videos"] == [{"video": str((videos / "698.mp4").resolve())}]
    assert rows[0]["prompt"] == rl_rows[0]["prompt"]
    assert rows[0]["reward_model"] == rl_rows[0]["reward_model"]
    assert rows[0]["extra_info"]["id"] == rl_rows[0]["extra_info"]["id"]


def test_a_dead_judge_gives_no_credit_then_stops_the_run(tmp_path, monkeypatch):
    from evads_rl.judge_guard import JudgeFailureError

    extra = {"id": "x1", "question": "价格是多少？", "clues": "第3秒显示29.9元",
             "meta_info": "Time 3s: OCR Text: [29.9元]"}
    solution = "<think>第3秒显示29.9元</think> <answer>29.9元</answer>"
    with JudgeServer(faults=lambda i: "500") as server:
        monkeypatch.setenv("EVADS_JUDGE_BASE_URL", server.url)
        monkeypatch.setenv("EVADS_JUDGE_MODEL", "loopback-fake-judge")
        monkeypatch.setenv("EVADS_JUDGE_MAX_ATTEMPTS", "1")
        monkeypatch.setenv("EVADS_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.delenv("EVADS_JUDGE", raising=False)
        monkeypatch.setattr(verl_reward, "_scorer", None)
        first = verl_reward.compute_score("EVAdsBench", solution, "<answer>29.9元</answer>",
                                          extra)
        with pytest.raises(JudgeFailureError, match=r"failed on 4 of 4 requests of the last 2"):
            verl_reward.compute_score("EVAdsBench", solution, "<answer>29.9元</answer>", extra)
    # no judge-based credit for the failed judgement, and the dict says so
    assert (first["answer_g"], first["trace_g"], first["format"]) == (0.0, 0.0, 1.0)
    assert (first["judge_errors"], first["judge_requests"]) == (2, 2)
    assert first["score"] == pytest.approx(1.0)  # the format term only, and the run stops


def test_verl_data_refuses_a_validation_file_sharing_training_videos(sample_dir, tmp_path,
                                                                     capsys):
    annotations, videos = sample_dir / "annotations", str(sample_dir / "videos")
    training = ["--disjoint-from", str(annotations / "rl.parquet"),
                "--disjoint-from", str(annotations / "sft.parquet")]
    assert main(["verl-data", str(annotations / "test.parquet"), "--video-dir", videos,
                 "--out", str(tmp_path / "val.parquet"), *training]) == 0
    # normalized.jsonl holds every split: the RL and SFT videos are in it
    out = tmp_path / "leaky.parquet"
    assert main(["verl-data", str(annotations / "normalized.jsonl"), "--video-dir", videos,
                 "--out", str(out), *training]) == 2
    error = capsys.readouterr().err
    assert "shares 2 video(s) (ad_11, ad_12) and 10 question id(s)" in error
    assert "shares 2 video(s) (ad_09, ad_10)" in error and "--allow-overlap" in error
    assert not out.exists()
    assert main(["verl-data", str(annotations / "normalized.jsonl"), "--video-dir", videos,
                 "--out", str(out), *training, "--allow-overlap"]) == 0
    assert capsys.readouterr().out.startswith("WARNING: NOT HELD OUT (--allow-overlap): ")


def test_verl_script_refuses_a_val_file_sharing_the_training_videos(sample_dir, tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _run_script(sample_dir, tmp_path, VAL=str(sample_dir / "annotations" / "rl.parquet"))
    assert failed.value.returncode == 2
    assert "shares 2 video(s) (ad_11, ad_12)" in failed.value.stderr
    assert not (tmp_path / "argv.json").exists()  # verl was never started
    overrides = _run_script(sample_dir, tmp_path / "allowed",
                            VAL=str(sample_dir / "annotations" / "rl.parquet"),
                            ALLOW_OVERLAP="1")
    assert Path(overrides["data.val_files"]).is_file()
