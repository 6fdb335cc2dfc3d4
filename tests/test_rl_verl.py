"""The verl reward adapter on rows of the released RL parquet, scored by the loopback judge."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from judge_server import JudgeServer

from evads_rl import verl_reward
from evads_tasks.annotations import AnnotationError

RL_PARQUET = Path(__file__).resolve().parents[2] / "shared/data/EVAds_RL.parquet"


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
                    "format": 1.0, "judge_errors": 0}
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
