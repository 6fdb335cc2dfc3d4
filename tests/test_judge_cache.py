"""The on-disk judge cache: reruns and resumed crashes never pay for a verdict twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from judge_server import JudgeServer
from paths import REPO

from evads_tasks.core.judge import (
    CACHE_FILE,
    HttpJudge,
    JudgeCache,
    JudgeConfigError,
    JudgeRequest,
    judge_from_env,
)


def requests(n: int) -> list[JudgeRequest]:
    return [JudgeRequest(question=f"第{i}个问题", metadata="Category: 美妆", clues="线索",
                         reference=f"答案{i}", answer=f"答案{i}" if i % 2 else "不知道")
            for i in range(n)]


def make_judge(server: JudgeServer, cache_dir: Path, model: str = "qwen-plus") -> HttpJudge:
    return HttpJudge(server.url, model, cache_dir=cache_dir, max_attempts=2,
                     backoff_base_s=0.01, progress=False)


def test_a_rerun_makes_zero_http_calls_even_from_a_new_client(tmp_path: Path) -> None:
    items = requests(20)
    with JudgeServer() as server:
        with make_judge(server, tmp_path) as judge:
            first = judge.judge_many(items)
            assert server.calls == 20 and not any(r.cached for r in first)
            again = judge.judge_many(items)
        assert server.calls == 20
        with make_judge(server, tmp_path) as fresh:
            third = fresh.judge_many(items)
        assert server.calls == 20
        assert all(r.cached for r in again + third)
        assert [r.score for r in third] == [r.score for r in first]
        assert [r.raw for r in third] == [r.raw for r in first]
        with make_judge(server, tmp_path, model="gpt-4o") as other_model:
            other_model.judge(items[0])
        assert server.calls == 21  # the judge model is part of the key


def test_servers_on_other_ports_or_paths_never_share_verdicts(tmp_path: Path) -> None:
    item = requests(1)[0]
    with JudgeServer() as first, JudgeServer(lambda messages: "Answer: 0.25") as second:
        with make_judge(first, tmp_path) as judge:
            assert judge.judge(item).score == 0.0
        with make_judge(second, tmp_path) as judge:  # same host and model, another port
            assert judge.judge(item).score == 0.25
        with HttpJudge(second.url.removesuffix("/v1"), "qwen-plus", cache_dir=tmp_path,
                       max_attempts=1, progress=False) as judge:  # same port, another path
            judge.judge(item)
        with HttpJudge(second.url.upper().replace("/V1", "/v1") + "/", "qwen-plus",
                       cache_dir=tmp_path, progress=False) as judge:  # the same endpoint
            assert judge.judge(item).cached
        assert (first.calls, second.calls) == (1, 2)


def test_only_parsed_verdicts_are_cached(tmp_path: Path) -> None:
    with JudgeServer(faults=["garbage", "garbage"]) as server, \
            make_judge(server, tmp_path) as judge:
        item = requests(1)[0]
        assert judge.judge(item).score is None
        assert len(judge.cache) == 0
        assert judge.judge(item).score == 0.0 and server.calls == 3
        assert judge.judge(item).cached and server.calls == 3


def test_a_corrupt_cache_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / CACHE_FILE).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match=f"{CACHE_FILE}: the judge cache is damaged .*move "
                       f"{CACHE_FILE} away"):
        JudgeCache(tmp_path)


def test_a_corrupt_cache_blames_the_cache_not_the_url(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / CACHE_FILE).write_bytes(b"this is not sqlite" * 100)
    monkeypatch.delenv("EVADS_JUDGE", raising=False)
    monkeypatch.setenv("EVADS_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("EVADS_JUDGE_MODEL", "qwen-plus")
    monkeypatch.setenv("EVADS_CACHE_DIR", str(tmp_path))
    with pytest.raises(JudgeConfigError) as caught:
        judge_from_env()
    assert str(tmp_path / CACHE_FILE) in str(caught.value)
    assert "EVADS_CACHE_DIR" in str(caught.value)
    assert "EVADS_JUDGE_BASE_URL" not in str(caught.value)


def _cached_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=5) as connection:
        try:
            return connection.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_a_killed_run_resumes_with_only_the_missing_calls(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    items = requests(40)
    request_file = tmp_path / "requests.jsonl"
    request_file.write_text("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n"
                                    for r in items), encoding="utf-8")
    cache_dir = tmp_path / "cache"
    with JudgeServer(latency_s=0.1) as server:
        env = {**os.environ, "EVADS_JUDGE_BASE_URL": server.url, "EVADS_JUDGE_MODEL": "m",
               "EVADS_JUDGE_CONCURRENCY": "2", "EVADS_CACHE_DIR": str(cache_dir)}
        env.pop("EVADS_JUDGE", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "evads_tasks.core.judge", "--requests", str(request_file),
             "--out", str(tmp_path / "results.jsonl")], cwd=REPO, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _cached_rows(cache_dir / CACHE_FILE) < 6:
            assert process.poll() is None, "the judging run ended before it was killed"
            assert time.monotonic() < deadline, "no verdict was cached within 60 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        done = _cached_rows(cache_dir / CACHE_FILE)
        assert 6 <= done < 40
        assert not (tmp_path / "results.jsonl").exists()
        calls_before = server.calls

        for name in ("EVADS_JUDGE_BASE_URL", "EVADS_JUDGE_MODEL"):
            monkeypatch.setenv(name, env[name])
        with judge_from_env(cache_dir) as judge:
            results = judge.judge_many(items)
        assert server.calls - calls_before == 40 - done
        assert sum(r.cached for r in results) == done
        assert [r.score for r in results] == [1.0 if i % 2 else 0.0 for i in range(40)]
