"""The Q&A generator end to end, as a user runs it: ``python -m evads_generate`` on
the sample videos (real decoding, Whisper, RapidOCR) against a loopback OpenAI-compatible
server scripted with good and bad candidates (``tests/qa_llm_server.py``); its output scored
by a real lmms-eval run of the suite; a run killed mid-way resumed without repeating a call.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from judge_server import JudgeServer
from make_runner import start_make
from paths import REPO
from qa_llm_server import BAD, BLIND_QUESTION, EXTRA_BAD, FAULTS, ScriptedAdLLM
from test_lmms_eval_runs import BIN, METRICS, TASKS, _env, _run

from evads_generate.checks import ground
from evads_tasks.core.annotations import TASK_CODES, load_annotations

pytestmark = pytest.mark.slow
SILENT, BROKEN = "ad_07", "broken"   # the sample's video without audio; a corrupt file


def _generate(source: Path, out: Path, url: str, *flags: str,
              wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    command = [sys.executable, "-m", "evads_generate", str(source), "--out",
               str(out), "--llm-base-url", url, "--llm-model", "scripted-ad-llm",
               "--language", "zh", "--no-progress", *flags]
    env = _env()
    if not wait:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)


def _candidates(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "candidates.jsonl").read_text(
        encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def video_run(sample_dir, tmp_path_factory):
    """One run on the eight videos of the sample's test split plus a corrupt file, every
    candidate checked."""
    root = tmp_path_factory.mktemp("qa_videos")
    videos = root / "videos"
    videos.mkdir()
    script = json.loads((sample_dir / "script.json").read_text(encoding="utf-8"))
    for video in script["videos"]:
        if video["split"] == "test":
            (videos / f"{video['video_id']}.mp4").symlink_to(sample_dir / video["file"])
    (videos / f"{BROKEN}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    policy = ScriptedAdLLM(sample_dir / "script.json")
    out = root / "out"
    started = time.perf_counter()
    with JudgeServer(policy) as server:
        done = _generate(videos, out, server.url, "--check", "all", "--asr-language", "en")
        calls = server.calls
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"out": out, "policy": policy, "calls": calls, "stdout": done.stdout,
            "seconds": time.perf_counter() - started}


def test_keeps_five_grounded_questions_per_usable_video(video_run):
    out = video_run["out"]
    records = load_annotations(out / "annotations.parquet")
    by_video: dict[str, list] = {}
    for record in records:
        by_video.setdefault(record.video_id, []).append(record)
    assert sorted(by_video) == ["ad_01", "ad_02", "ad_03", "ad_04", "ad_05", "ad_06", "ad_08"]
    for video_id, questions in by_video.items():
        assert sorted(r.task for r in questions) == sorted(TASK_CODES), video_id
        assert len({r.question for r in questions}) == 5
    assert len(load_annotations(out / "annotations.jsonl")) == len(records) == 35
    # every quote behind a kept question is in that question's own metadata, at its time
    candidates = {c["id"]: c for c in _candidates(out)}
    for record in records:
        chosen = next(c for c in candidates.values() if c["question"] == record.question
                      and c["video_id"] == record.video_id and c["status"] == "selected")
        assert ground(chosen["evidence"], record.events, 2.0)["ok"], chosen
        assert chosen["checks"]["answerable"]["score"] >= 0.75
        assert chosen["checks"]["blind"]["score"] < 0.75
        assert record.category is not None
    # the suite finds the videos beside the file
    assert all((out / "videos" / f"{vid}.mp4").resolve().is_file() for vid in by_video)


def test_every_rejection_keeps_its_reason(video_run):
    rows = _candidates(video_run["out"])
    reasons = Counter(row["rejection"] for row in rows if row["status"] == "rejected")
    for code in [*BAD.values(), *EXTRA_BAD, "cm_modalities"]:
        assert reasons[code] >= 1, (code, reasons)
    assert all(row["reason"] for row in rows)
    hallucinated = [row for row in rows if any("9999" in e["quote"] for e in row["evidence"])]
    assert hallucinated and all(row["rejection"] == "ungrounded" and
                                "is not in the metadata" in row["reason"]
                                for row in hallucinated)
    blind = [row for row in rows if row["question"] == BLIND_QUESTION]
    assert blind and all(row["rejection"] == "blind_answerable" for row in blind)
    assert all(row["raw_reply"] for row in rows)
    # the silent video cannot have a CM question: all its CM candidates cite no speech
    silent_cm = [row for row in rows if row["video_id"] == SILENT and row["task"] == "CM"]
    assert silent_cm and all(row["rejection"] == "cm_modalities" for row in silent_cm)


def test_report_names_bad_input_and_figures(video_run):
    out = video_run["out"]
    report = (out / "report.md").read_text(encoding="utf-8")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["videos"] == {"total": 9, "complete": 7, "partial": 1, "unusable": 1,
                                 "retry": 0}
    assert f"`{BROKEN}` (unusable): video cannot be decoded" in report
    assert f"`{SILENT}` (partial): no audio stream" in report
    assert "CM: none of" in report
    assert summary["reply_errors"] == {fault: 1 for _, _, fault in FAULTS}
    for _, _, fault in FAULTS:
        assert f"- {fault}: 1" in report
    for heading in ("## Per role", "## Per task", "## Rejection reasons", "## Checks",
                    "## Density of the new set"):
        assert heading in report
    assert summary["grounding"]["rate"] < 1 and summary["duplicates"]["rate"] > 0
    assert summary["answer_words"]["selected"]["n"] == summary["selected"]
    assert summary["density"]["video"]["videos"] == 7  # measured on the kept videos
    assert (out / "report.png").stat().st_size > 0
    assert (out / "density" / "density.png").stat().st_size > 0
    print(json.dumps({k: summary[k] for k in ("candidates", "selected", "rejections",
                                               "grounding", "duplicates", "calls_per_accepted",
                                               "per_video")}, ensure_ascii=False))
    print(f"generation on the sample videos: {video_run['seconds']:.0f} s, "
          f"{video_run['calls']} calls")


def test_suite_scores_the_generated_set(video_run, tmp_path):
    out = video_run["out"]
    records = load_annotations(out / "annotations.parquet")
    results_dir = tmp_path / "eval"
    with JudgeServer() as judge:
        env = _env(EVADS_ANNOTATIONS=str(out / "annotations.parquet"),
                   EVADS_JUDGE_BASE_URL=judge.url, EVADS_JUDGE_MODEL="loopback-fake-judge",
                   EVADS_CACHE_DIR=str(tmp_path / "cache"))
        answer = records[0].answer.replace(",", " ").replace("=", " ")
        results, samples, _ = _run(
            [str(BIN / "lmms_eval"), "--model", "dummy", "--model_args",
             f"response={answer},read_bytes=1", "--tasks", "evads",
             "--output_path", str(results_dir), "--log_samples"], env, results_dir)
    for task in TASKS:
        assert len(samples[task]) == len(records) // 5
        assert results["results"][task]["judge_errors,none"] == 0
        assert all(f"{m},none" in results["results"][task] for m in METRICS)
    first = next(s for s in samples["evads_bp"]
                 if s["judge_errors"]["question_id"] == records[0].question_id)
    assert first["judge_errors"]["judge_score"] == 1.0


def _make_generate(source: Path, out: Path, url: str) -> subprocess.Popen:
    """``make generate`` as a user starts it (killable as a whole)."""
    return start_make("generate", f"VIDEOS={source}", f"LLM_URL={url}",
                      "LLM_MODEL=scripted-ad-llm", f"GENERATE_OUT={out}",
                      "GENERATE_FLAGS=--no-progress --timeout 120", env=_env())


def test_killed_run_resumes_without_repeating_a_call(sample_dir, tmp_path):
    """``make generate`` on the sample's annotations (lazy checks, the default): the server
    stops answering after 60 calls, the run is killed while those calls hang, and the same
    command run again finishes without asking any answered call again."""
    source = sample_dir / "annotations" / "test.parquet"
    policy = ScriptedAdLLM(sample_dir / "script.json")
    hang = {"after": 60}
    out = tmp_path / "out"
    with JudgeServer(policy, latency_s=0.02, hang_s=60,
                     faults=lambda i: "timeout" if i >= hang["after"] else None) as server:
        first = _make_generate(source, out, server.url)
        deadline = time.monotonic() + 300
        while server.calls <= hang["after"] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # the answered replies are in the cache by now; the rest hang
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        # Calls answered before the kill. Two videos may send the same blind-check prompt at
        # once (both miss the cache), so distinct prompts can be fewer than calls.
        answered_calls = len(policy.answered)
        answered = set(policy.answered)
        received = len(server.requests)
        hang["after"] = 10**9
        second = _make_generate(source, out, server.url)
        output, _ = second.communicate(timeout=600)
        again = [json.dumps(r["messages"], ensure_ascii=False, sort_keys=True)
                 for r in server.requests[received:]]
    assert second.returncode == 0, output[-3000:]
    assert answered_calls >= 60
    assert not answered & set(again), "a call answered before the kill was asked again"
    assert len(load_annotations(out / "annotations.parquet")) == 35
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert sum(summary["calls"]["cached"].values()) > 0  # unfinished videos replayed
    # the folder holds that run: other settings are refused before any work, naming them
    refused = _generate(source, out, "http://127.0.0.1:9/v1", "--language", "en")
    assert refused.returncode == 2
    assert "generator.language 'zh' -> 'en'" in refused.stderr and "--fresh" in refused.stderr
