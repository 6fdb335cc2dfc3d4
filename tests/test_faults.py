"""The fault suite: what a user sees when the judge, the videos or the disk misbehave.

Every test runs the real command (``python -m evads_tasks.core.judge``, the ``lmms_eval`` wrapper,
``python -m evads_density``) against the real loopback judge (``tests/judge_server.py``) with a
sentinel API key, and asserts what the user sees: the exit code, the counts, that a rerun
repeats no paid call, and that no fragment of the key reaches any output. Kept under two
minutes in all (the two lmms-eval runs take most of it).
"""

from __future__ import annotations

import json
import os
import shutil
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

from evads_tasks.core.judge import CACHE_FILE, JudgeRequest

SECRET = "sk-SENTINEL-1234"
BIN = Path(sys.executable).parent
N = 6  # answers per judge CLI run


def _clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", **settings)
    return env


def _judge_env(url: str, cache: Path, **settings: str) -> dict[str, str]:
    return _clean_env(**{"EVADS_JUDGE_BASE_URL": url, "EVADS_JUDGE_MODEL": "qwen-plus",
                         "EVADS_JUDGE_API_KEY": SECRET, "EVADS_JUDGE_TIMEOUT": "0.5",
                         "EVADS_JUDGE_MAX_ATTEMPTS": "3", "EVADS_JUDGE_RETRY_DELAY": "0.05",
                         "EVADS_JUDGE_CONCURRENCY": str(N), "EVADS_CACHE_DIR": str(cache),
                         **settings})


def _requests(path: Path, n: int = N) -> Path:
    items = [JudgeRequest(question=f"问题{i}", metadata="Time 1s: OCR Text: [限时99元]",
                          clues="字幕强调限时价格", reference=f"答案{i}", answer=f"答案{i}")
             for i in range(n)]
    path.write_text("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in items),
                    encoding="utf-8")
    return path


def _fragments(text: str, fragment: int = 5) -> list[str]:
    return [SECRET[i:i + fragment] for i in range(len(SECRET) - fragment + 1)
            if SECRET[i:i + fragment] in text]


def _judge_cli(tmp_path: Path, env: dict[str, str]) -> tuple[int, list[str], list[dict], float]:
    """Exit code, stderr lines, verdicts and seconds of one ``python -m evads_tasks.core.judge``."""
    out = tmp_path / "verdicts.jsonl"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "evads_tasks.core.judge", "--requests",
                           str(tmp_path / "requests.jsonl"), "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    verdicts = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] \
        if out.exists() else []
    everything = done.stdout + done.stderr + (out.read_text() if out.exists() else "")
    cache = tmp_path / "cache" / CACHE_FILE
    everything += cache.read_bytes().decode("utf-8", "replace") if cache.exists() else ""
    assert not _fragments(everything), "a fragment of the API key reached an output"
    return done.returncode, done.stderr.strip().splitlines(), verdicts, elapsed


# fault -> (HTTP calls for N answers, exit code, errors, reason in the first error). Each
# run starts with one timed call (the preflight, a single attempt); failed, it is the one
# call more that the run pays, since the run asks that answer again.
PERSISTENT = {
    "500": (3 * N + 1, 3, N, "HTTP 500"),
    "429": (3 * N + 1, 3, N, "HTTP 429"),
    "timeout": (3 * N + 1, 3, N, "timeout: no complete reply within 0.5s"),
    "trickle": (3 * N + 1, 3, N, "timeout"),
    "bad_json": (3 * N + 1, 3, N, "malformed chat-completions body"),
    "garbage": (2 * N + 1, 3, N, "unparseable judge reply"),  # asked once more, not 3 times
    "close": (3 * N + 1, 3, N, "connection error"),
    "echo": (3 * N + 1, 3, N, "Authorization: ***"),
}


@pytest.mark.parametrize("fault", list(PERSISTENT))
def test_a_persistent_fault_is_counted_fails_the_run_and_leaks_nothing(
        fault: str, tmp_path: Path) -> None:
    calls, code, errors, reason = PERSISTENT[fault]
    _requests(tmp_path / "requests.jsonl")
    with JudgeServer(faults=lambda i: fault, retry_after="0.1", hang_s=5,
                     trickle_s=0.2) as server:
        status, lines, verdicts, elapsed = _judge_cli(
            tmp_path, _judge_env(server.url, tmp_path / "cache"))
        assert server.calls == calls
    assert status == code
    assert f"{N - errors} judged, {errors} failed" in lines[-2]
    assert lines[-1].startswith(f"error: the judge failed on {errors} of {N} judged answers "
                                "(100.0%, above EVADS_MAX_JUDGE_ERROR_RATE=0.02); first error: ")
    assert reason in lines[-1]
    assert [v["score"] for v in verdicts] == [None] * N
    assert elapsed < 12  # the slow and trickling judges are cut at the 0.5 s deadline


def test_a_refused_connection_is_counted_and_fails_the_run(tmp_path: Path) -> None:
    _requests(tmp_path / "requests.jsonl")
    with JudgeServer() as server:
        url = server.url
    status, lines, verdicts, _ = _judge_cli(tmp_path, _judge_env(url, tmp_path / "cache"))
    assert status == 3 and "connection error" in lines[-1]
    assert sum(v["score"] is None for v in verdicts) == N


def test_a_judge_failing_a_third_of_requests_costs_nothing_and_a_rerun_pays_nothing(
        tmp_path: Path) -> None:
    _requests(tmp_path / "requests.jsonl", 12)
    with JudgeServer(faults=lambda i: "500" if i % 3 == 0 else None) as server:
        env = _judge_env(server.url, tmp_path / "cache")
        status, lines, verdicts, _ = _judge_cli(tmp_path, env)
        first = server.calls
        again, _, rerun, _ = _judge_cli(tmp_path, env)
        assert server.calls == first  # every verdict came from the cache
    assert status == again == 0 and "12 judged, 0 failed, 0 from cache" in lines[-1]
    assert [v["score"] for v in verdicts] == [1.0] * 12 and all(v["cached"] for v in rerun)
    assert 17 <= first <= 20  # 12 answers, about a third retried, the failed timed call


def test_errors_at_the_threshold_pass_and_above_it_fail(tmp_path: Path) -> None:
    """1 failed answer of 50 is 2%, not above the default 0.02: exit 0, still counted."""
    _requests(tmp_path / "requests.jsonl", 50)

    def one_bad(messages: list[dict]) -> str:
        return "no verdict" if "问题7\n" in messages[-1]["content"] else "Answer: 1.0"

    with JudgeServer(one_bad) as server:
        env = _judge_env(server.url, tmp_path / "cache")
        status, lines, _, _ = _judge_cli(tmp_path, env)
        assert status == 0 and "49 judged, 1 failed" in lines[-1]
        stricter, lines, _, _ = _judge_cli(
            tmp_path, {**env, "EVADS_MAX_JUDGE_ERROR_RATE": "0.01"})
        assert stricter == 3 and "failed on 1 of 50 judged answers (2.0%" in lines[-1]
        # only the failed one is asked again (twice a run; its first time as the second
        # run's timed call, the one answer left to judge)
        assert server.calls == 49 + 2 + 3


def test_kill_9_mid_run_then_resume_repeats_no_paid_call(tmp_path: Path) -> None:
    _requests(tmp_path / "requests.jsonl", 40)
    cache = tmp_path / "cache" / CACHE_FILE
    with JudgeServer(latency_s=0.1, faults=lambda i: "500" if i % 3 == 0 else None) as server:
        env = {**_judge_env(server.url, tmp_path / "cache"), "EVADS_JUDGE_CONCURRENCY": "2"}
        process = subprocess.Popen(
            [sys.executable, "-m", "evads_tasks.core.judge", "--requests",
             str(tmp_path / "requests.jsonl"), "--out", str(tmp_path / "verdicts.jsonl")],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _rows(cache) < 8:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        done = _rows(cache)
        before = server.calls
        status, lines, verdicts, _ = _judge_cli(tmp_path, env)
        again = {_prompt(r) for r in server.requests[before:]}
    assert status == 0 and [v["score"] for v in verdicts] == [1.0] * 40
    assert 8 <= done < 40
    assert len(again) == 40 - done, "a verdict cached before the kill was asked again"
    assert f"40 judged, 0 failed, {done} from cache" in lines[-1]


def _rows(cache: Path) -> int:
    try:
        with sqlite3.connect(cache, timeout=5) as connection:
            return connection.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    except sqlite3.Error:
        return 0


def _prompt(body: dict) -> str:
    return body["messages"][-1]["content"]


# ---- lmms-eval runs: bad videos and a dead, echoing judge -----------------------------

def _user_data(sample_dir: Path, root: Path) -> Path:
    """The sample in the authors' layout, with ad_02.mp4 replaced by a zero-byte file."""
    (root / "annotations").mkdir(parents=True)
    shutil.copy(sample_dir / "annotations" / "test.parquet", root / "annotations")
    shutil.copytree(sample_dir / "videos", root / "videos")
    (root / "videos" / "ad_02.mp4").write_bytes(b"")
    return root / "annotations" / "test.parquet"


def _lmms_eval(env: dict[str, str], out: Path, tasks: str = "evads"
               ) -> tuple[int, list[str], str]:
    done = subprocess.run([str(BIN / "lmms_eval"), "--model", "dummy", "--model_args",
                           "response=a,read_bytes=1", "--tasks", tasks, "--output_path",
                           str(out), "--log_samples"], cwd=REPO, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    files = "".join(p.read_text(encoding="utf-8", errors="replace")
                    for p in out.rglob("*") if p.is_file()) if out.exists() else ""
    return done.returncode, [line for line in done.stdout.splitlines() if line.strip()], files


@pytest.mark.slow
def test_a_zero_byte_video_stops_the_run_before_any_model_or_judge_call(
        sample_dir: Path, tmp_path: Path) -> None:
    annotations = _user_data(sample_dir, tmp_path / "evads")
    out = tmp_path / "out"
    with JudgeServer() as server:
        env = _judge_env(server.url, tmp_path / "cache", EVADS_ANNOTATIONS=str(annotations))
        status, lines, _ = _lmms_eval(env, out)
        assert server.calls == 0
    bad = tmp_path / "evads" / "videos" / "ad_02.mp4"
    assert status == 1 and not out.exists()
    assert lines[-2].startswith("error: 1 of 8 videos cannot be used, so nothing was run")
    assert lines[-1] == (f"error: video file {bad} cannot be decoded: empty file (0 bytes) "
                         "(questions ad_02_q1, ad_02_q2, ad_02_q3, ad_02_q4, ad_02_q5)")
    assert not any("Loading" in line or "model" in line.lower() for line in lines[:-2])


@pytest.mark.slow
def test_skip_leaves_the_bad_videos_questions_out_and_counts_them(
        sample_dir: Path, tmp_path: Path) -> None:
    """EVADS_BAD_VIDEOS=skip, and a judge failing a third of its calls (retried, so no error)."""
    annotations = _user_data(sample_dir, tmp_path / "evads")
    out = tmp_path / "out"
    with JudgeServer(faults=lambda i: "500" if i % 3 == 0 else None) as server:
        env = _judge_env(server.url, tmp_path / "cache", EVADS_ANNOTATIONS=str(annotations),
                         EVADS_BAD_VIDEOS="skip")
        status, lines, files = _lmms_eval(env, out)
    assert status == 0, "\n".join(lines[-15:])
    assert any("EVADS_BAD_VIDEOS=skip: leaving out video file" in line for line in lines)
    assert any("attempt 1/3 failed (HTTP 500 server error" in line and "retrying in" in line
               for line in lines)  # each retry's WARNING shows in the run's output
    results = json.loads(next(out.rglob("*_results.json")).read_text(encoding="utf-8"))
    scores = results["results"]
    assert scores["evads"]["excluded_questions,none"] == 5
    assert scores["evads"]["judge_errors,none"] == 0
    assert all(scores[f"evads_{t}"]["excluded_questions,none"] == 1
               for t in ("bp", "cm", "ml", "ci", "rc"))
    assert all(n["effective"] == 7 for n in results["n-samples"].values())
    report = subprocess.run([sys.executable, "-m", "evads_tasks", "report", str(out)],
                            cwd=REPO, env=env, capture_output=True, text=True, check=True)
    text = next(out.rglob("evads_report.md")).read_text(encoding="utf-8")
    assert report.returncode == 0
    assert "**5 question(s) excluded** (BP 1, CM 1, ML 1, CI 1, RC 1)" in text
    assert "| Overall | 35 | 35 | 0 |" in text


@pytest.mark.slow
def test_a_dead_echoing_judge_fails_the_run_after_writing_results_and_leaks_no_key(
        sample_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with JudgeServer(faults=lambda i: "echo", echo_pad=lambda i: 120 + 6 * i) as server:
        env = _judge_env(server.url, tmp_path / "cache", EVADS_JUDGE_MAX_ATTEMPTS="1",
                         EVADS_ANNOTATIONS=str(sample_dir / "annotations" / "test.parquet"),
                         EVADS_VIDEO_DIR=str(sample_dir / "videos"))
        status, lines, files = _lmms_eval(env, out, "evads_bp")
        assert server.calls == 8 and all(h == f"Bearer {SECRET}" for h in server.auth_headers)
    assert status == 3
    assert lines[-1].startswith("error: the judge failed on 8 of 8 judged answers (100.0%, "
                                "above EVADS_MAX_JUDGE_ERROR_RATE=0.02); first error: judge "
                                "failed after 1 attempt(s): HTTP 500 server error")
    results = json.loads(next(out.rglob("*_results.json")).read_text(encoding="utf-8"))
    assert results["results"]["evads_bp"]["judge_errors,none"] == 8
    assert not _fragments("\n".join(lines) + files), "a fragment of the key reached an output"
    assert "Authorization: ***" in files  # the echoed header is in the logged samples, redacted


# ---- density: a corrupt line on resume, a one-frame video ------------------------------

def test_density_resume_skips_a_corrupt_line_and_keeps_the_rows_around_it(
        sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from evads_density.cli import main

    command = [str(sample_dir / "annotations" / "test.parquet"), "--out", str(tmp_path),
               "--source", "annotations"]
    assert main(command) == 0
    rows_file = tmp_path / "per_video.jsonl"
    lines = rows_file.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = '{"video_id": "ad_04", "vden": nul\n'  # corrupt in the middle
    rows_file.write_text("".join(lines), encoding="utf-8")
    capsys.readouterr()
    assert main(command) == 0
    captured = capsys.readouterr()
    assert f"warning: {rows_file}, line 4: skipped, not a row" in captured.err
    assert "resuming: 7 of 8 videos" in captured.out
    kept = rows_file.read_text(encoding="utf-8").splitlines(keepends=True)
    assert kept[:3] + kept[3:7] == lines[:3] + lines[4:]  # every good row kept, in place
    assert json.loads(kept[7])["video_id"] == "ad_04"  # only the lost one measured again


def test_density_a_one_frame_video_gets_no_vden_and_stays_out_of_the_mean(
        tmp_path: Path) -> None:
    from evads_density.cli import main
    from evads_density.synthetic import Scene, make_clip

    folder = tmp_path / "videos"
    folder.mkdir()
    make_clip(folder / "cuts.mp4", [Scene(1, 10 + i) for i in range(3)])
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=red:s=64x64:d=1", "-frames:v", "1", str(folder / "one.mp4")],
                   check=True)
    out = tmp_path / "out"
    assert main([str(folder), "--out", str(out), "--asr", "none", "--ocr", "none"]) == 0
    rows = {r["video_id"]: r for r in map(json.loads, (out / "per_video.jsonl").open())}
    assert rows["one"]["vden"] is None and rows["one"]["video"]["frames"] == 1
    assert any("Vden needs 2 or more" in note for note in rows["one"]["video"]["notes"])
    assert rows["cuts"]["vden"] > 20
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 0 and summary["vden"]["n"] == 1
    assert summary["vden"]["mean"] == pytest.approx(rows["cuts"]["vden"])
