"""Real lmms-eval runs of the E-VAds tasks on the bundled sample, as a user would start them.

- the ``lmms_eval`` console script with the users' words, lmms-eval's ``dummy`` model
  reading the sample videos, judged by the loopback judge server over HTTP;
- ``lmms-eval --include_path "$(python -m evads_tasks path)"`` with the tiny RANDOM
  Qwen2.5-VL through lmms-eval's own ``qwen2_5_vl`` class, decoding real frames;
- ``lmms_eval tasks subtasks``: with lmms-eval's built-in tasks indexed, every E-VAds name
  still resolves to our files (no clash).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from judge_server import GARBAGE_REPLY, JudgeServer, fake_judge_policy

from evads_tasks.annotations import CATEGORIES, load_annotations
from evads_tasks.judge.prompts import SECTION_METADATA, read_sections
from evads_tasks.tasks import INCLUDE_PATH
from evads_tasks.tasks.utils import OFFICIAL_INSTRUCTION
from evads_tasks.tiny_model import ensure_tiny_vlm

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TASKS = ("evads_bp", "evads_cm", "evads_ml", "evads_ci", "evads_rc")
METRICS = ("evads_r5", "evads_r3", "evads_r2", "evads_g")


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", **settings)
    return env


def _run(command: list[str], env: dict[str, str], out: Path) -> tuple[dict, dict, str]:
    """Run lmms-eval: results JSON, samples per task, output (it exits 0 even on errors)."""
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    results = sorted(out.rglob("*_results.json"))
    assert done.returncode == 0 and results, done.stdout[-4000:] + done.stderr[-4000:]
    samples = {path.name.split("_samples_")[1].removesuffix(".jsonl"):
               [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
               for path in results[-1].parent.glob("*_samples_*.jsonl")}
    return json.loads(results[-1].read_text(encoding="utf-8")), samples, done.stdout + done.stderr


def _report(out: Path) -> str:
    subprocess.run([str(BIN / "python"), "-m", "evads_tasks", "report", str(out)], cwd=REPO,
                   check=True, capture_output=True, env=_env())
    return next(out.rglob("evads_report.md")).read_text(encoding="utf-8")


def test_console_script_dummy_model_loopback_judge(sample_dir, tmp_path):
    records = load_annotations(sample_dir / "annotations" / "test.parquet")
    videos = sorted({r.video_id for r in records})
    # the judge fails on every question of the first video (one per task)
    failing = {r.metadata_text().strip() for r in records if r.video_id == videos[0]}
    hit = next(r for r in records if r.video_id == videos[1] and r.task == "BP")
    response = hit.answer.replace(",", " ").replace("=", " ")  # model_args syntax

    def policy(messages):
        metadata = read_sections(str(messages[-1]["content"]))[SECTION_METADATA]
        return GARBAGE_REPLY if metadata.strip() in failing else fake_judge_policy(messages)

    user_tasks = tmp_path / "user_tasks"
    user_tasks.mkdir()
    out = tmp_path / "out"
    with JudgeServer(policy) as server:
        env = _env(EVADS_ANNOTATIONS=str(sample_dir / "annotations" / "test.parquet"),
                   EVADS_VIDEO_DIR=str(sample_dir / "videos"),
                   EVADS_JUDGE_BASE_URL=server.url, EVADS_JUDGE_MODEL="loopback-fake-judge",
                   EVADS_JUDGE_MAX_ATTEMPTS="1", EVADS_CACHE_DIR=str(tmp_path / "cache"))
        results, samples, _ = _run(
            [str(BIN / "lmms_eval"), "--model", "dummy",
             "--model_args", f"response={response},read_bytes=1",
             "--tasks", "evads_perception,evads_reasoning", "--include_path", str(user_tasks),
             "--output_path", str(out), "--log_samples"], env, out)
        calls, url = server.calls, server.url

    assert results["config"]["resolved_cli_args"]["include_path"] == [str(user_tasks),
                                                                        str(INCLUDE_PATH)]
    assert calls == len(records)
    scores = results["results"]
    for task in TASKS:
        logged = samples[task]
        assert len(logged) == len(records) // 5
        assert scores[task]["judge_errors,none"] == 1
        judged = [s["judge_errors"]["judge_score"] for s in logged
                  if s["judge_errors"]["error"] is None]
        assert len(judged) == len(logged) - 1
        assert scores[task]["evads_r5,none"] == pytest.approx(sum(judged) / len(judged))
        for sample in logged:
            record = sample["judge_errors"]
            assert record["judge"] == f"loopback-fake-judge @ {url}"
            if record["error"] is None:
                assert float(record["raw"].rsplit("Answer:", 1)[1]) == record["judge_score"]
                assert all("score" in sample[m] for m in METRICS)
            else:
                assert record["raw"] is None or GARBAGE_REPLY in record["raw"]
                assert all("score" not in sample[m] for m in METRICS)  # missing, not 0
            assert sample["input"].startswith("Category: ")
            assert f"\n\n{OFFICIAL_INSTRUCTION}\n" in sample["input"]
    perfect = next(s for s in samples["evads_bp"]
                   if s["judge_errors"]["question_id"] == hit.question_id)
    assert perfect["judge_errors"]["judge_score"] == 1.0
    assert perfect["evads_r2"]["score"] == 1.0
    assert scores["evads_perception"]["judge_errors,none"] == 2
    assert scores["evads_reasoning"]["judge_errors,none"] == 3
    for group, members in (("evads_perception", TASKS[:2]), ("evads_reasoning", TASKS[2:])):
        for metric in METRICS:  # weight_by_size over equal-sized tasks: the plain mean
            expected = sum(scores[t][f"{metric},none"] for t in members) / len(members)
            assert scores[group][f"{metric},none"] == pytest.approx(expected)

    report = _report(out)
    assert f"loopback-fake-judge @ {url}" in report
    assert "not a real model" in report
    for category in CATEGORIES:
        assert f"| {category} | " in report
    assert "| Overall | 40 | 35 | 5 |" in report


def test_tiny_qwen2_5_vl_through_lmms_eval_decodes_frames(sample_dir, tmp_path):
    model = ensure_tiny_vlm("qwen2_5_vl", root=REPO / "runs" / "models")
    include = subprocess.run([str(BIN / "python"), "-m", "evads_tasks", "path"], cwd=REPO,
                             check=True, capture_output=True, text=True).stdout.strip()
    out = tmp_path / "out"
    env = _env(EVADS_ANNOTATIONS=str(sample_dir / "annotations" / "test.parquet"),
               EVADS_VIDEO_DIR=str(sample_dir / "videos"), EVADS_JUDGE="similarity",
               EVADS_CACHE_DIR=str(tmp_path / "cache"))
    results, samples, output = _run(
        [str(BIN / "lmms-eval"), "--model", "qwen2_5_vl", "--model_args",
         f"pretrained={model},device=cpu,device_map=cpu,fps=1,max_pixels=12544,min_pixels=3136",
         "--tasks", "evads", "--limit", "1", "--gen_kwargs", "max_new_tokens=8",
         "--include_path", include, "--output_path", str(out), "--log_samples"], env, out)

    assert "qwen-vl-utils using decord to read video" in output  # real frames, real decoder
    assert set(samples) == set(TASKS)
    for task in TASKS:
        (sample,) = samples[task]
        assert sample["token_counts"][0]["output_tokens"] > 0
        assert sample["judge_errors"]["judge"].startswith("similarity (offline fallback")
        assert results["results"][task]["judge_errors,none"] == 0
    for group in ("evads", "evads_perception", "evads_reasoning"):
        assert all(f"{metric},none" in results["results"][group] for metric in METRICS)
    report = _report(out)
    assert "tiny RANDOM model" in report and "not the paper's LLM judge" in report


def test_names_do_not_clash_with_builtin_tasks():
    listing = subprocess.run([str(BIN / "lmms_eval"), "tasks", "subtasks"], cwd=REPO,
                             env=_env(), check=True, capture_output=True, text=True).stdout
    rows = {cells[1].strip(): cells[2].strip() for line in listing.splitlines()
            if (cells := line.split("|")) and len(cells) > 3 and cells[1].strip()}
    for task in TASKS:
        assert rows[task] == str(INCLUDE_PATH / f"{task}.yaml")
    assert not [name for name in rows if name.startswith("evads") and name not in TASKS]
