"""Real lmms-eval runs of the E-VAds tasks on the bundled sample, as a user would start them.

- the ``lmms_eval`` console script with the users' words, lmms-eval's ``dummy`` model
  reading the sample videos, judged by the loopback judge server over HTTP;
- ``lmms-eval --include_path "$(python -m evads_tasks path)"`` with the tiny RANDOM
  Qwen2.5-VL through lmms-eval's own ``qwen2_5_vl`` class, decoding real frames;
- ``lmms_eval tasks subtasks``: with lmms-eval's built-in tasks indexed, every E-VAds name
  still resolves to our files (no clash);
- ``make eval`` with a user's annotations, and with a run that fails;
- failed runs exit 1 with the root cause on the last line (lmms-eval itself exits 0).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from judge_server import GARBAGE_REPLY, JudgeServer, fake_judge_policy
from make_runner import run_make
from paths import REPO
from tenacity import RetryError, retry, stop_after_attempt, wait_fixed

from evads_tasks.core.annotations import CATEGORIES, TASK_CODES, load_annotations
from evads_tasks.core.judge.api import JudgeConfigError
from evads_tasks.core.judge.prompts import SECTION_METADATA, SECTION_QUESTION, read_sections
from evads_tasks.sample.tiny_model import ensure_tiny_vlm
from evads_tasks.tasks import INCLUDE_PATH
from evads_tasks.tasks.ablation import CONDITIONS, FULL
from evads_tasks.tasks.conditions import condition_of_task, task_of
from evads_tasks.tasks.outcome import failure_lines
from evads_tasks.tasks.utils import EVADS_INSTRUCTION

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TASKS = ("evads_bp", "evads_cm", "evads_ml", "evads_ci", "evads_rc")
METRICS = ("evads_r5", "evads_r3", "evads_r2", "evads_g")


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", **settings)
    return env


def _run(command: list[str], env: dict[str, str], out: Path) -> tuple[dict, dict, str]:
    """Run lmms-eval: results JSON, samples per task, output (plain ``lmms-eval`` exits 0
    even on errors, so a results file is required too)."""
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
    # the judge fails on every question of the first video (one per task) and on one more BP
    # question, so that the tasks have different numbers of judged answers
    failing = {r.metadata_text().strip() for r in records if r.video_id == videos[0]}
    extra = next(r for r in records if r.video_id == videos[2] and r.task == "BP")
    hit = next(r for r in records if r.video_id == videos[1] and r.task == "BP")
    response = hit.answer.replace(",", " ").replace("=", " ")  # model_args syntax

    def policy(messages):
        metadata = read_sections(str(messages[-1]["content"]))[SECTION_METADATA]
        question = read_sections(str(messages[-1]["content"]))[SECTION_QUESTION]
        if metadata.strip() in failing or question.strip() == extra.question:
            return GARBAGE_REPLY
        return fake_judge_policy(messages)

    user_tasks = tmp_path / "user_tasks"
    user_tasks.mkdir()
    out = tmp_path / "out"
    with JudgeServer(policy) as server:
        env = _env(EVADS_ANNOTATIONS=str(sample_dir / "annotations" / "test.parquet"),
                   EVADS_VIDEO_DIR=str(sample_dir / "videos"),
                   EVADS_JUDGE_BASE_URL=server.url, EVADS_JUDGE_MODEL="loopback-fake-judge",
                   EVADS_JUDGE_MAX_ATTEMPTS="1", EVADS_CACHE_DIR=str(tmp_path / "cache"),
                   # 6 of 40 judge errors on purpose: above the default 0.02, the run would
                   # exit 3 (tests/test_faults.py checks that)
                   EVADS_MAX_JUDGE_ERROR_RATE="0.2")
        results, samples, _ = _run(
            [str(BIN / "lmms_eval"), "--model", "dummy",
             "--model_args", f"response={response},read_bytes=1",
             "--tasks", "evads", "--include_path", str(user_tasks),
             "--output_path", str(out), "--log_samples"], env, out)
        calls, url = server.calls, server.url

    assert results["config"]["resolved_cli_args"]["include_path"] == [str(user_tasks),
                                                                        str(INCLUDE_PATH)]
    assert calls == len(records) + 6  # a garbage reply is asked once more
    scores = results["results"]
    for task in TASKS:
        logged = samples[task]
        errors = 2 if task == "evads_bp" else 1
        assert len(logged) == len(records) // 5
        assert scores[task]["judge_errors,none"] == errors
        judged = [s["judge_errors"]["judge_score"] for s in logged
                  if s["judge_errors"]["error"] is None]
        assert len(judged) == len(logged) - errors
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
            assert f"\n\n{EVADS_INSTRUCTION}\n" in sample["input"]
    perfect = next(s for s in samples["evads_bp"]
                   if s["judge_errors"]["question_id"] == hit.question_id)
    assert perfect["judge_errors"]["judge_score"] == 1.0
    assert perfect["evads_r2"]["score"] == 1.0
    assert scores["evads_perception"]["judge_errors,none"] == 3
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
    # the report's group rows are lmms-eval's group values, judge errors and all
    for row, group in (("Perception", "evads_perception"),
                       ("Cognition & Reasoning", "evads_reasoning"), ("Overall", "evads")):
        cells = _row(report, row)
        for cell, metric in zip(cells[3:7], METRICS, strict=True):  # VALID; ALL follow
            mean = float(cell.split()[0])  # mean ± stderr [95% interval]
            assert mean == pytest.approx(scores[group][f"{metric},none"], abs=5e-5)
    assert _row(report, "Overall")[:3] == ["40", "34", "6"]
    judged_r5 = [s["evads_r5"]["score"] for task in TASKS for s in samples[task]
                 if "score" in s["evads_r5"]]
    pooled = sum(judged_r5) / len(judged_r5)
    assert abs(pooled - scores["evads"]["evads_r5,none"]) > 1e-3  # the two methods differ here


def _row(report: str, name: str) -> list[str]:
    """The cells after the name of the report's table row ``name``."""
    line = next(line for line in report.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")[1:]]


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
         # 1 fps for CPU time: the chat backend (asserted below) hands fps to qwen-vl-utils
         f"pretrained={model},device=cpu,device_map=cpu,fps=1,max_pixels=12544,min_pixels=3136",
         "--tasks", "evads", "--limit", "1", "--gen_kwargs", "max_new_tokens=8",
         "--include_path", include, "--output_path", str(out), "--log_samples"], env, out)

    assert "qwen-vl-utils using decord to read video" in output  # real frames, real decoder
    assert results["config"]["model_backend"].endswith("qwen2_5_vl.Qwen2_5_VL (chat)")
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
    ours = {name: path for name, path in rows.items() if name.startswith("evads")}
    assert set(ours) == {task_of(condition, code) for condition in CONDITIONS.values()
                         for code in TASK_CODES}  # the five tasks under each condition
    for name, path in ours.items():
        condition, _ = condition_of_task(name)
        folder = INCLUDE_PATH if condition is FULL else INCLUDE_PATH / condition.name
        assert path == str(folder / f"{name}.yaml")


def _make(target: str, *settings: str, env: dict[str, str],
          dry_run: bool = False) -> subprocess.CompletedProcess:
    """``make TARGET`` with this interpreter's venv, never reinstalling it."""
    venv = Path(sys.executable).parents[1]
    return run_make(*(["-n"] if dry_run else []), "-o", f"{venv}/.installed", target,
                    f"VENV={venv}", *settings, env=env)


def test_make_eval_with_a_users_data_and_a_run_that_fails(sample_dir, tmp_path):
    """A user's annotations in the authors' layout: their own videos/ (not the sample's), the
    official 1524 new tokens, judge threads = EVADS_JUDGE_CONCURRENCY; then a failed run must
    fail `make eval` although the first run's results lie in the same folder."""
    root = tmp_path / "evads"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(sample_dir / "annotations" / "test.parquet", root / "annotations")
    shutil.copytree(sample_dir / "videos", root / "videos")
    out = tmp_path / "out"
    env = _env(EVADS_ANNOTATIONS=str(root / "annotations" / "test.parquet"),
               EVADS_JUDGE="similarity", EVADS_JUDGE_CONCURRENCY="3",
               EVADS_CACHE_DIR=str(tmp_path / "cache"))
    settings = ("MODEL=dummy", "MODEL_ARGS=response=a,read_bytes=1", f"EVAL_OUT={out}",
                "EVAL_FLAGS=--limit 1")
    done = _make("eval", *settings, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (results_path,) = out.rglob("*_results.json")
    results = json.loads(results_path.read_text(encoding="utf-8"))
    assert all(config["generation_kwargs"]["max_new_tokens"] == 1524
               for config in results["configs"].values())
    assert "max_new_tokens=64" not in done.stdout and "tiny RANDOM" not in done.stdout
    assert (results_path.parent / "evads_report.md").is_file()

    first_video = sorted((root / "videos").iterdir())[0]
    first_video.unlink()  # the sample's copy still exists: only the user's folder may be used
    failed = _make("eval", *settings, env=env)
    assert failed.returncode != 0
    *_, cause, make_error = [line for line in failed.stderr.splitlines() if line.strip()]
    assert cause.startswith("error: ") and f"video file {first_video} not found" in cause
    assert make_error.startswith("make: ***")  # make stopped at lmms_eval, before the report


def test_only_the_tiny_models_runs_cap_new_tokens():
    venv_env = _env()
    tiny = _make("demo-eval", env=venv_env, dry_run=True).stdout
    user = _make("eval", "MODEL=qwen2_5_vl", "MODEL_ARGS=pretrained=/models/Qwen2.5-VL-7B",
                 env={**venv_env, "EVADS_ANNOTATIONS": "/data/test.parquet"},
                 dry_run=True).stdout
    assert "--gen_kwargs max_new_tokens=64" in tiny
    assert "max_new_tokens" not in user and "lmms_eval --model qwen2_5_vl" in user
    assert "EVADS_VIDEO_DIR" not in user  # videos/ beside the user's annotations/ folder


# ---- failed runs --------------------------------------------------------------------

def _console_script(*args: str, env: dict[str, str]) -> tuple[int, list[str]]:
    """Exit status and the non-empty lines of stdout and stderr as a terminal shows them."""
    done = subprocess.run([str(BIN / "lmms_eval"), *args], env=env, cwd=REPO, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    return done.returncode, [line for line in done.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("failure", ["missing annotations", "bad prompt", "unwritable output"])
def test_a_failed_run_exits_1_with_the_cause_last(sample_dir, tmp_path, failure):
    """lmms-eval 0.7.3 logs the error (a RetryError around ours) and exits 0; an E-VAds run
    exits 1 and ends with the cause, also when lmms-eval only failed to save (every launch
    form: tests/test_launch_modes.py)."""
    missing = tmp_path / "missing.parquet"
    settings = {"EVADS_ANNOTATIONS": str(sample_dir / "annotations" / "test.parquet"),
                "EVADS_VIDEO_DIR": str(sample_dir / "videos"), "EVADS_JUDGE": "similarity",
                "EVADS_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "out"
    if failure == "missing annotations":
        settings["EVADS_ANNOTATIONS"] = str(missing)
    elif failure == "bad prompt":
        settings["EVADS_PROMPT"] = "bogus"
    else:
        out.write_text("a file where lmms-eval needs a folder", encoding="utf-8")
    status, lines = _console_script("--model", "dummy", "--model_args", "response=a",
                                    "--tasks", "evads_bp", "--limit", "1",
                                    "--output_path", str(out), env=_env(**settings))

    assert status == 1, "\n".join(lines[-20:])
    expected = {
        "missing annotations": f"error: file {missing}: file not found",
        "bad prompt": "error: ValueError: EVADS_PROMPT/prompt_format must be one of "
                      "('answer', 'reasoning'), got 'bogus'",
        "unwritable output": "error: lmms-eval could not write its results: "
                             f"FileExistsError: [Errno 17] File exists: '{out}'",
    }[failure]
    assert lines[-1].startswith(expected), lines[-3:]
    if failure == "missing annotations":  # found before lmms-eval started: no retries
        assert not any("RetryError" in line for line in lines)
    if failure == "unwritable output":
        assert any("Could not save results aggregated" in line for line in lines)
    assert not list(tmp_path.rglob("*_results.json"))


def test_no_tasks_is_a_failure_not_a_clean_exit():
    status, lines = _console_script("--model", "dummy", env=_env())
    assert status == 1
    assert lines[-1] == "error: no --tasks given: name the tasks to run (e.g. --tasks evads)"


def test_a_bad_judge_concurrency_fails_before_lmms_eval_with_the_config_message():
    status, lines = _console_script("--model", "dummy", "--tasks", "evads",
                                    env=_env(EVADS_JUDGE_CONCURRENCY="zero"))
    assert status == 1
    assert lines[-1] == "error: EVADS_JUDGE_CONCURRENCY must be a positive int, got 'zero'"


def _exhausted_retries(error: Exception) -> Exception:
    """What lmms-eval raises when its tenacity retries (around process_docs) all fail."""
    @retry(stop=stop_after_attempt(2), wait=wait_fixed(0))
    def build_task():
        raise error

    with pytest.raises(RetryError) as caught:
        build_task()
    return caught.value


def test_the_cause_is_unwrapped_from_tenacity_and_kept_on_one_line():
    judge = JudgeConfigError("no judge configured (EVADS_JUDGE_BASE_URL is not set)")
    assert failure_lines(_exhausted_retries(judge)) == [f"error: {judge}"]
    hub = OSError("We couldn't connect to 'https://huggingface.co'.\nCheck your connection.")
    assert failure_lines(hub) == ["error: OSError: We couldn't connect to "
                                  "'https://huggingface.co'. Check your connection."]


def test_help_says_what_the_wrapper_adds_before_lmms_evals_help():
    status, lines = _console_script("--help", env=_env())
    assert status == 0
    usage = next(i for i, line in enumerate(lines) if line.startswith("usage: lmms-eval"))
    paragraph = " ".join(lines[:usage])
    assert paragraph.startswith("This lmms_eval is the E-VAds wrapper")
    assert "E-VAds tasks" in paragraph and "--include_path" in paragraph
    assert "LMMS_EVAL_PLUGINS=evads_tasks" in paragraph
