"""MG-GRPO reward functions against the loopback HTTP judge: concurrency, batch reuse, errors."""

from __future__ import annotations

import logging
import time

import pytest
from judge_server import JudgeServer

from evads_rl.judging import MGGRPORewards, MGJudgeScorer
from evads_tasks.core.judge import HttpJudge, JudgeRequest

LATENCY_S = 0.4
REFERENCE = "价格是29.9元，主打买一送一"
CLUES = "第3秒字幕显示29.9元，买一送一"
GROUP = [  # 8 completions of one prompt, as TRL passes them for a VLM (chat messages)
    [{"role": "assistant", "content": f"<think>{CLUES}</think> <answer>{REFERENCE}</answer>"}],
    [{"role": "assistant", "content": "<think>字幕显示价格</think> <answer>价格是29.9元</answer>"}],
    [{"role": "assistant", "content": "<think>看不清</think> <answer>不知道</answer>"}],
    [{"role": "assistant", "content": f"{REFERENCE}"}],  # untagged: judged whole, no format
    [{"role": "assistant", "content": f"<think>{CLUES}</think>"}],  # answer = nothing left
    [{"role": "assistant", "content": ""}],  # empty
    [{"role": "assistant", "content": f"<answer>{REFERENCE}</answer> <think>{CLUES}</think>"}],
    [{"role": "assistant", "content": f"<think>{CLUES}</think> <answer>{REFERENCE}"}],  # cut off
]


def _columns(n: int) -> dict:
    return {"question": ["视频里的价格和优惠是什么？"] * n,
            "metadata": ["Time 3s: OCR Text: [29.9元]"] * n,
            "clues": [CLUES] * n, "reference": [REFERENCE] * n, "question_id": ["q1"] * n,
            "accuracy_ratio": [1.0] * n, "format_ratio": [1.0] * n}


@pytest.fixture
def make_judge(tmp_path):
    """HttpJudge clients on a loopback server, closed after the test."""
    judges: list[HttpJudge] = []

    def build(server: JudgeServer, **kwargs) -> HttpJudge:
        judges.append(HttpJudge(server.url, "loopback-fake-judge", cache_dir=tmp_path / "cache",
                                progress=False, **kwargs))
        return judges[-1]

    yield build
    for judge in judges:
        judge.close()


def test_a_group_of_8_costs_about_one_judge_latency(make_judge):
    metrics: dict[str, float] = {}
    with JudgeServer(latency_s=LATENCY_S) as server:
        judge = make_judge(server)
        judge.judge(JudgeRequest("warm-up", "", "", "x", "x"))  # connection set-up, not timed
        rewards = MGGRPORewards(MGJudgeScorer(judge))
        columns = {**_columns(len(GROUP)), "log_metric": metrics.__setitem__}
        start = time.perf_counter()
        answer = rewards.answer_reward(prompts=None, completions=GROUP, **columns)
        elapsed = time.perf_counter() - start
        calls_after_answer = server.calls - 1
        trace = rewards.trace_reward(prompts=None, completions=GROUP, **columns)
        fmt = rewards.format_reward(prompts=None, completions=GROUP, **columns)
        assert server.calls - 1 == calls_after_answer  # the trace terms came from the same round

    # Distinct texts only (empty ones are not sent): 3 answers + 3 traces, one concurrent round.
    assert calls_after_answer == 6
    # One at a time would take 6 latencies (2.4 s); allow slack for a busy 2-core machine.
    assert elapsed < 3 * LATENCY_S, f"{elapsed:.2f}s: the group was not judged concurrently"
    assert answer[0] == pytest.approx(1.0) and trace[0] == pytest.approx(1.0)
    assert 0 < answer[1] < 1.0  # partial reference overlap -> an intermediate level
    assert answer[2] == 0.0
    assert answer[3] == pytest.approx(1.0) and fmt[3] == 0.0  # untagged: judged, no format
    assert answer[4] == 0.0 and trace[4] > 0  # think only
    assert (answer[5], trace[5], fmt[5]) == (0.0, 0.0, 0.0)  # empty completion
    assert fmt == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert metrics["judge/requests"] == 6 and metrics["judge/judge_errors"] == 0
    # The judge was given the row's question, metadata, clues and reference from the columns.
    prompts = [r["messages"][-1]["content"] for r in server.requests[1:]]
    question, metadata = columns["question"][0], columns["metadata"][0]
    assert all(question in p and metadata in p and CLUES in p for p in prompts)
    assert any(REFERENCE in p for p in prompts)


def test_judge_errors_score_zero_are_counted_and_logged(make_judge, caplog):
    metrics: dict[str, float] = {}
    with JudgeServer(faults=lambda index: "500") as server, \
            caplog.at_level(logging.WARNING, logger="evads_rl.judging"):
        scorer = MGJudgeScorer(make_judge(server, max_attempts=1))
        rewards = MGGRPORewards(scorer)
        columns = {**_columns(2), "log_metric": metrics.__setitem__}
        answer = rewards.answer_reward(completions=GROUP[:2], **columns)
        fmt = rewards.format_reward(completions=GROUP[:2], **columns)
    assert answer == [0.0, 0.0] and fmt == [1.0, 1.0]
    assert scorer.stats.errors == 4 and metrics["judge/judge_errors"] == 4
    assert "judge error" in caplog.text


def test_a_failed_verdict_is_kept_for_its_batch_only_then_retried(make_judge):
    columns = _columns(1)
    with JudgeServer(faults=lambda index: "500" if index < 2 else None) as server:
        rewards = MGGRPORewards(MGJudgeScorer(make_judge(server, max_attempts=1)))
        first = rewards.answer_reward(completions=GROUP[:1], **columns)
        trace = rewards.trace_reward(completions=GROUP[:1], **columns)
        assert (first, trace, server.calls) == ([0.0], [0.0], 2)  # same batch: not re-asked
        again = rewards.answer_reward(completions=GROUP[:1], **columns)  # the next batch
        again_trace = rewards.trace_reward(completions=GROUP[:1], **columns)
        assert server.calls == 4
    assert again == [pytest.approx(1.0)] and again_trace == [pytest.approx(1.0)]
    assert rewards.scorer.stats.errors == 2 and rewards.scorer.stats.requests == 4


def test_row_ratios_from_the_dataset_scale_the_terms(make_judge):
    with JudgeServer() as server:
        rewards = MGGRPORewards(MGJudgeScorer(make_judge(server)))
        columns = {**_columns(2), "accuracy_ratio": [0.5, 1.0], "format_ratio": [2.0, 0.0]}
        answer = rewards.answer_reward(completions=GROUP[:1] * 2, **columns)
        fmt = rewards.format_reward(completions=GROUP[:1] * 2, **columns)
    assert answer == [pytest.approx(0.5), pytest.approx(1.0)]
    assert fmt == [2.0, 0.0]


def test_missing_dataset_columns_fail_clearly(make_judge):
    with JudgeServer() as server:
        rewards = MGGRPORewards(MGJudgeScorer(make_judge(server)))
        with pytest.raises(KeyError, match="clues"):
            rewards.answer_reward(completions=GROUP[:1], question=["q"], metadata=["m"],
                                  reference=["r"])
