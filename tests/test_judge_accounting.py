"""Judge accounting against the loopback server's scripted ``usage`` and ``model``: tokens
per verdict (every try paid), kept by the cache, totals and cost, and the warning when the
served model changes within a run."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from judge_server import JudgeServer

from evads_tasks.core.judge import CACHE_FILE, HttpJudge, JudgeCache, JudgeRequest
from evads_tasks.core.judge.accounting import (
    PRICE_ENV,
    Price,
    judge_price,
    merge_totals,
    priced,
    served_model_warning,
    usage_record,
    usage_section,
    usage_totals,
)
from evads_tasks.core.judge.api import JudgeConfigError


def _request(i: int) -> JudgeRequest:
    return JudgeRequest(question=f"问题{i}", metadata="Time 1s: OCR Text: [限时99元]",
                        clues="字幕强调限时价格", reference="限时99元", answer=f"回答{i} 限时99元")


def _usage(index: int, text: str) -> dict[str, int]:
    """Scripted usage: call i reports 100 + i prompt tokens and 10 completion tokens."""
    return {"prompt_tokens": 100 + index, "completion_tokens": 10}


def _judge(server: JudgeServer, cache: Path) -> HttpJudge:
    return HttpJudge(server.url, "qwen-plus", cache_dir=cache, progress=False,
                     backoff_base_s=0.01, max_attempts=2, concurrency=1)


def test_tokens_come_from_each_reply_and_a_cached_verdict_keeps_them(tmp_path):
    with JudgeServer(usage=_usage, served_model="qwen-plus-2025-07-28") as server:
        with _judge(server, tmp_path) as judge:
            fresh = [judge.judge(_request(i)) for i in range(3)]
        with _judge(server, tmp_path) as judge:
            cached = [judge.judge(_request(i)) for i in range(3)]
        calls = server.calls
    assert calls == 3
    assert [(r.prompt_tokens, r.completion_tokens, r.calls, r.cached) for r in fresh] == [
        (100, 10, 1, False), (101, 10, 1, False), (102, 10, 1, False)]
    assert [(r.prompt_tokens, r.completion_tokens, r.calls, r.cached) for r in cached] == [
        (100, 10, 0, True), (101, 10, 0, True), (102, 10, 0, True)]
    assert {r.served_model for r in fresh + cached} == {"qwen-plus-2025-07-28"}

    now = usage_totals(usage_record(r, "qwen-plus") for r in fresh)
    assert (now["verdicts"], now["calls"], now["prompt_tokens"], now["completion_tokens"]) == (
        3, 3, 303, 30)
    later = usage_totals(usage_record(r, "qwen-plus") for r in cached)
    assert (later["calls"], later["cached"], later["prompt_tokens"]) == (0, 3, 0)
    assert (later["cached_prompt_tokens"], later["cached_completion_tokens"]) == (303, 30)
    both = merge_totals([now, later])
    assert (both["verdicts"], both["calls"], both["prompt_tokens"]) == (6, 3, 303)
    assert both["served_models"] == {"qwen-plus-2025-07-28": 6}
    assert both["requested_models"] == ["qwen-plus"]
    costs = priced(both, Price(0.8, 2.0))
    assert costs["cost"] == pytest.approx((303 * 0.8 + 30 * 2.0) / 1e6)
    assert costs["cost_uncached"] == pytest.approx((606 * 0.8 + 60 * 2.0) / 1e6)


def test_every_try_is_paid_an_unparseable_reply_too(tmp_path):
    with JudgeServer(usage=_usage, faults=["garbage"]) as server, \
            _judge(server, tmp_path) as judge:
        result = judge.judge(_request(0))
    assert result.score == 1.0 and result.calls == 2
    assert (result.prompt_tokens, result.completion_tokens) == (100 + 101, 20)
    with JudgeServer(usage=_usage, faults=["garbage", "garbage"]) as server, \
            _judge(server, tmp_path / "other") as judge:
        failed = judge.judge(_request(0))
    assert failed.score is None and failed.error is not None
    assert (failed.prompt_tokens, failed.calls) == (201, 2)  # no verdict, still paid


def test_a_served_model_that_changes_within_a_run_is_warned_about(tmp_path, caplog):
    served = lambda index: "qwen-plus-2025-07-28" if index < 2 else "qwen-plus-2025-09-11"  # noqa: E731
    caplog.set_level(logging.WARNING)
    with JudgeServer(served_model=served) as server, _judge(server, tmp_path) as judge:
        results = [judge.judge(_request(i)) for i in range(4)]
    changed = [r for r in caplog.records if "alias changed" in r.getMessage()]
    assert len(changed) == 1  # once, at the first reply from the new snapshot
    assert "'qwen-plus-2025-09-11', earlier as 'qwen-plus-2025-07-28'" in changed[0].getMessage()
    totals = usage_totals(usage_record(r, "qwen-plus") for r in results)
    assert totals["served_models"] == {"qwen-plus-2025-07-28": 2, "qwen-plus-2025-09-11": 2}
    warning = served_model_warning(totals)
    assert warning is not None and "requested qwen-plus" in warning
    section = "\n".join(usage_section({"all": totals}, Price(1, 1)))
    assert f"**WARNING: {warning}**" in section
    assert served_model_warning(usage_totals([])) is None


def test_the_price_setting():
    assert judge_price({}) is None
    assert judge_price({PRICE_ENV: " 0.8, 2 "}) == Price(0.8, 2.0)
    for bad in ("0.8", "a,b", "-1,2", "1,2,3"):
        with pytest.raises(JudgeConfigError, match="IN_PER_1M,OUT_PER_1M"):
            judge_price({PRICE_ENV: bad})


def test_a_cache_file_from_before_usage_recording_still_works(tmp_path):
    """Old files get the usage columns on open; their verdicts report no usage."""
    with sqlite3.connect(tmp_path / CACHE_FILE) as old:
        old.execute("CREATE TABLE verdicts (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                    "endpoint TEXT NOT NULL, rubric TEXT NOT NULL, score REAL NOT NULL, "
                    "raw TEXT NOT NULL, created REAL NOT NULL)")
        old.execute("INSERT INTO verdicts VALUES ('k', 'm', 'e', 'answer', 0.5, 'Answer: 0.5', 0)")
    cache = JudgeCache(tmp_path)
    hit = cache.get_verdict("k")
    assert (hit.score, hit.raw, hit.prompt_tokens, hit.served_model) == (
        0.5, "Answer: 0.5", None, None)
    cache.put("k2", model="m", endpoint="e", rubric="answer", score=1.0, raw="Answer: 1",
              prompt_tokens=7, completion_tokens=3, served_model="m-2025")
    again = JudgeCache(tmp_path).get_verdict("k2")
    assert (again.prompt_tokens, again.completion_tokens, again.served_model) == (7, 3, "m-2025")
    assert cache.get("k2") == (1.0, "Answer: 1")
    totals = usage_totals([{"cached": True, "calls": 0}])  # an old cached verdict
    assert totals["without_usage"] == 1
