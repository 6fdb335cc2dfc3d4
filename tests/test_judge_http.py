"""The HTTP judge against a real loopback chat-completions server: round trip, retries, threads,
secrets."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from pathlib import Path

import pytest
from judge_server import GARBAGE_REPLY, JudgeServer

from evads_tasks.core.chat.client import backoff_delay, retry_after_seconds
from evads_tasks.core.judge import NO_ANSWER, HttpJudge, JudgeRequest, build_messages

SECRET = "sk-evads-test-SECRET-4242"


def request(reference: str, answer: str, question: str = "商品卖点是什么？") -> JudgeRequest:
    return JudgeRequest(question=question, metadata="Time 1s: OCR Text: [限时99元]",
                        clues="字幕强调限时价格", reference=reference, answer=answer)


def make_judge(server: JudgeServer, cache_dir: Path | None, **kwargs) -> HttpJudge:
    options = {"timeout_s": 0.5, "backoff_base_s": 0.01, "backoff_max_s": 0.05,
               "max_attempts": 3, "progress": False, **kwargs}
    return HttpJudge(server.url, "qwen-plus", SECRET, cache_dir=cache_dir, **options)


def test_round_trip_sends_the_official_request_and_reads_the_score(tmp_path: Path) -> None:
    with JudgeServer() as server, make_judge(server, tmp_path) as judge:
        item = request("限时99元", "视频说限时99元，很划算")
        result = judge.judge(item)
        assert (result.score, result.error, result.cached) == (1.0, None, False)
        assert result.raw is not None and result.raw.endswith("Answer: 1.0")
        assert result.judge == f"qwen-plus @ {server.url}"
        body = server.requests[0]
        assert body["model"] == "qwen-plus" and body["temperature"] == 0
        assert body["messages"] == build_messages(item)
        assert server.auth_headers == [f"Bearer {SECRET}"]
        many = judge.judge_many([request("限时99元", "不知道"), request("abcd", "ab"),
                                 request("红色", "红色的")])
        assert [r.score for r in many] == [0.0, 0.5, 1.0]
        assert server.calls == 4


def test_trace_rubric_round_trip(tmp_path: Path) -> None:
    clues = "字幕强调限时价格"
    grounded = JudgeRequest("q", "m", clues, "r", f"<think>{clues}，所以划算</think>", "trace")
    ungrounded = JudgeRequest("q", "m", clues, "r", "<think>颜色很好看</think>", "trace")
    with JudgeServer() as server, make_judge(server, tmp_path) as judge:
        assert [r.score for r in judge.judge_many([grounded, ungrounded])] == [1.0, 0.0]
        assert "grounding" in server.requests[0]["messages"][1]["content"]


@pytest.mark.parametrize("fault", ["timeout", "500", "429", "garbage", "bad_json"])
def test_a_transient_fault_is_retried_then_succeeds(tmp_path: Path, fault: str) -> None:
    with JudgeServer(faults=[fault], hang_s=5.0) as server, \
            make_judge(server, tmp_path, timeout_s=0.3) as judge:
        result = judge.judge(request("红色", "红色的"))
        assert (result.score, result.error) == (1.0, None)
        assert server.calls == 2


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    with JudgeServer(faults=["429"], retry_after="0.4") as server, \
            make_judge(server, tmp_path) as judge:
        started = time.monotonic()
        assert judge.judge(request("红色", "红色")).score == 1.0
        assert time.monotonic() - started >= 0.4
        assert server.calls == 2


@pytest.mark.parametrize(("fault", "reason"), [
    ("500", "HTTP 500"), ("timeout", "timeout"), ("garbage", "unparseable"),
    ("429", "HTTP 429")])
def test_a_persistent_fault_is_an_error_after_the_budget(tmp_path: Path, fault: str,
                                                         reason: str) -> None:
    with JudgeServer(faults=lambda index: fault, hang_s=5.0, retry_after="0.01") as server, \
            make_judge(server, tmp_path, timeout_s=0.2) as judge:
        result = judge.judge(request("红色", "红色的"))
        assert result.score is None
        assert result.error is not None and reason in result.error
        budget = 2 if fault == "garbage" else 3  # unparseable replies: asked once more only
        assert f"after {budget} attempt(s)" in result.error
        assert server.calls == budget
        assert result.raw == (GARBAGE_REPLY if fault == "garbage" else None)
        assert len(judge.cache) == 0


def test_unparseable_replies_have_their_own_budget(tmp_path: Path) -> None:
    """Transport failures count against max_attempts, unparseable replies against 2."""
    with JudgeServer(faults=["500", "500", "garbage", None]) as server, \
            make_judge(server, tmp_path) as judge:
        assert judge.judge(request("红色", "红色的")).score == 1.0
        assert server.calls == 4
    with JudgeServer(faults=["500", "garbage", "500", "garbage", None]) as server, \
            make_judge(server, tmp_path / "b") as judge:
        result = judge.judge(request("红色", "红色的"))
        assert result.score is None and "after 4 attempt(s): unparseable" in result.error
        assert server.calls == 4
    with JudgeServer(faults=["garbage", None]) as server, \
            make_judge(server, tmp_path / "c", unparseable_attempts=1) as judge:
        assert judge.judge(request("红色", "红色的")).score is None
        assert server.calls == 1


@pytest.mark.parametrize("rubric", ["answer", "trace"])
def test_an_empty_answer_scores_0_without_a_call(tmp_path: Path, rubric: str) -> None:
    with JudgeServer() as server, make_judge(server, tmp_path) as judge:
        for empty in ("", "  \n "):
            result = judge.judge(JudgeRequest("q", "m", "c", "r", empty, rubric))
            assert (result.score, result.raw, result.error) == (0.0, NO_ANSWER, None)
            assert result.judge == judge.name
        assert server.calls == 0 and len(judge.cache) == 0


def test_a_refused_key_is_not_retried(tmp_path: Path) -> None:
    with JudgeServer(faults=["401"]) as server, make_judge(server, tmp_path) as judge:
        result = judge.judge(request("红色", "红色"))
        assert result.score is None and "HTTP 401" in result.error
        assert "EVADS_JUDGE_API_KEY" in result.error
        assert server.calls == 1


def test_an_unreachable_server_is_an_error_not_a_zero(tmp_path: Path) -> None:
    with JudgeServer() as server:
        url = server.url
    judge = HttpJudge(url, "qwen-plus", cache_dir=tmp_path, timeout_s=0.5, max_attempts=2,
                      backoff_base_s=0.01, progress=False)
    result = judge.judge(request("红色", "红色"))
    assert result.score is None and "connection error" in result.error


def test_judging_from_8_threads_is_correct_and_bounded(tmp_path: Path) -> None:
    """lmms-eval calls process_results from several threads: every verdict must be its own."""
    with JudgeServer(latency_s=0.02) as server, \
            make_judge(server, tmp_path, concurrency=3) as judge:
        results: dict[tuple[int, int], float | None] = {}
        lock = threading.Lock()

        def work(thread: int) -> None:
            for i in range(8):
                # even items answer with the reference (1.0), odd items with nothing of it (0)
                answer = f"型号X{thread}-{i}" if i % 2 == 0 else "无关"
                score = judge.judge(request(f"型号X{thread}-{i}", answer)).score
                with lock:
                    results[thread, i] = score

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == {(t, i): 1.0 if i % 2 == 0 else 0.0 for t in range(8) for i in range(8)}
        assert server.calls == 64 and len(judge.cache) == 64
        assert server.max_in_flight == 3


def test_judge_many_runs_concurrently_in_order(tmp_path: Path) -> None:
    items = [request(f"卖点{i}", f"卖点{i}" if i % 3 else "无") for i in range(32)]
    with JudgeServer(latency_s=0.1) as server, \
            make_judge(server, tmp_path, concurrency=16) as judge:
        started = time.monotonic()
        results = judge.judge_many(items)
        elapsed = time.monotonic() - started
    assert [r.score for r in results] == [1.0 if i % 3 else 0.0 for i in range(32)]
    assert 8 <= server.max_in_flight <= 16
    assert elapsed < 32 * 0.1 / 4  # serial would take 3.2 s; 16-wide takes about 0.2 s


def test_the_api_key_never_leaks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    faults = ["500", "429", None, "401", "garbage", "garbage", "garbage"]
    with JudgeServer(faults=faults) as server, make_judge(server, tmp_path) as judge:
        results = [judge.judge(request(str(i), str(i))) for i in range(3)]
        results += judge.judge_many([request("x", "x"), request("y", "y")])
        assert [r.score is None for r in results] == [False, True, True, False, False]
        text = repr(judge) + repr(results) + caplog.text
        judge.close()
    assert "retrying" in caplog.text  # the retries were logged ...
    assert SECRET not in text  # ... without the key
    assert "***" in repr(judge)
    for path in tmp_path.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_key_echoed_by_the_server_is_redacted(tmp_path: Path) -> None:
    def echo_key_policy(messages: list[dict]) -> str:
        return f"your key {SECRET} looks fine\nAnswer: 0.5"

    with JudgeServer(echo_key_policy) as server, make_judge(server, tmp_path) as judge:
        result = judge.judge(request("a", "b"))
    assert result.score == 0.5 and SECRET not in result.raw
    assert all(SECRET.encode() not in p.read_bytes() for p in tmp_path.iterdir())


def test_retry_after_and_backoff_are_bounded() -> None:
    now = 1_000_000_000.0
    assert retry_after_seconds("2.5") == 2.5
    assert retry_after_seconds(email.utils.formatdate(now + 7, usegmt=True), now=now) == 7.0
    assert retry_after_seconds(email.utils.formatdate(now - 7, usegmt=True), now=now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    rng = random.Random(0)
    delays = [backoff_delay(attempt, 1.0, 8.0, rng) for attempt in range(1, 7)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(backoff_delay(3, 1.0, 8.0, rng), 6) for _ in range(20)}) > 1  # jittered
