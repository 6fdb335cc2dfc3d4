"""Did training help? ``python -m evads_rl rl`` with ``data.eval`` on the sample, as a user
runs it: the tiny RANDOM Qwen2-VL trained 1 SFT step and 1 GRPO step on the sample's SFT and
RL videos, validated on its test videos (before the first step and at the end), then the
base model, ``sft/final`` and ``grpo/final`` scored through the E-VAds lmms-eval tasks and
compared paired. The judge is the loopback server with a scripted policy (levels by a hash
of the judged text, so that the random model's answers get different scores); one run is
shared by the assertions, and the same command run again must train and judge nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from judge_server import JudgeServer, hashed_levels_policy
from paths import REPO

from evads_rl.benchmark_runs import EVALUATION_DIR
from evads_tasks.core.annotations import TASK_CODES

pytestmark = pytest.mark.slow
STAGES = {"sft": "loss", "grpo": "reward"}  # each stage's validation headline


@pytest.fixture(scope="module")
def judge():
    with JudgeServer(hashed_levels_policy) as server:
        yield server


def _evads_rl(*args: str, server: JudgeServer, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVADS_JUDGE_BASE_URL": server.url, "EVADS_JUDGE_MODEL": "loopback",
           "EVADS_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    for name in ("EVADS_JUDGE", "EVADS_PROTOCOL", "EVADS_PROMPT", "EVADS_ANNOTATIONS"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "evads_rl", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1500)


def _rl(out: Path, sample_dir: Path, server: JudgeServer, cache: Path):
    return _evads_rl("rl", "--config", "evads_rl/configs/cpu_smoke.yaml", "--output-dir",
                     str(out), "--set", f"data.eval={sample_dir / 'annotations/test.parquet'}",
                     "--set", "sft.max_steps=1", "--set", "grpo.max_steps=1",
                     server=server, cache=cache)


@pytest.fixture(scope="module")
def first_run(sample_dir, judge, tmp_path_factory):
    root = tmp_path_factory.mktemp("before_after")
    done = _rl(root / "run", sample_dir, judge, root / "cache")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, done, judge.calls


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("stage", STAGES)
def test_validation_before_the_first_step_and_at_the_end_per_task(first_run, stage):
    root, done, _ = first_run
    entries = [e for e in _log(root / "run" / stage / "metrics.jsonl")
               if any(key.startswith("eval_") for key in e)]
    assert [e["step"] for e in entries] == [0, 1]  # eval_on_start, and the last step
    metric = STAGES[stage]
    for entry in entries:
        assert isinstance(entry[f"eval_{metric}"], float)
        assert all(isinstance(entry[f"eval_{task}_{metric}"], float) for task in TASK_CODES)
    assert f"[{stage} eval step 0] {metric}=" in done.stdout
    assert f"[{stage} eval step 1] {metric}=" in done.stdout


def test_the_report_compares_the_base_and_each_trained_model(first_run):
    root, done, calls = first_run
    folder = root / "run" / EVALUATION_DIR
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "tiny-random-qwen2-vl" in report  # the base model
    assert str(root / "run" / "grpo" / "final") in report
    assert str(root / "run" / "sft" / "final") in report
    assert "tiny RANDOM models" in report and "+109.2%" in report
    for name in ("sft", "grpo"):
        section = report.split(f"## base -> {name}")[1].split("## ")[0]
        g_table = section.split("| G |")[1].split("\n\n")[0]
        for task in TASK_CODES:
            row = next(line for line in g_table.splitlines() if line.startswith(f"| {task} "))
            cells = [cell.strip() for cell in row.split("|")[1:-1]]
            float(cells[1]), float(cells[2])  # base and trained means
            assert cells[3].count("[") == 1 and cells[3].endswith("]")  # gain, interval
            assert cells[6] == "2 (2)"  # 2 questions of 2 videos (data.eval_limit: 10)
    assert (folder / "before_after.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    comparison = json.loads((folder / "comparison.json").read_text())
    overall = comparison["comparisons"]["grpo"]["overall"]["G"]
    assert overall["n"] == 10 and overall["clusters"] == 2
    assert "before/after: base" in done.stdout and calls > 0


def test_the_same_command_again_trains_and_judges_nothing(first_run, sample_dir, judge):
    root, first, calls = first_run
    report = (root / "run" / EVALUATION_DIR / "report.md").read_text(encoding="utf-8")
    again = _rl(root / "run", sample_dir, judge, root / "cache")
    assert again.returncode == 0, again.stderr[-3000:]
    assert judge.calls == calls  # 0 judge calls
    for stage in STAGES:
        assert f"[{stage}] already complete (step 1) with these settings" in again.stdout
    assert again.stdout.count("already scored") == 3 and "lmms-eval on" not in again.stdout
    rewritten = (root / "run" / EVALUATION_DIR / "report.md").read_text(encoding="utf-8")
    assert rewritten.split("## base -> sft")[1] == report.split("## base -> sft")[1]
    # the evaluation step alone, on the finished run
    alone = _evads_rl("evaluate", str(root / "run"), server=judge, cache=root / "cache")
    assert alone.returncode == 0 and judge.calls == calls
    assert "before/after: base" in alone.stdout
