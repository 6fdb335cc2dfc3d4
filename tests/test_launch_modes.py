"""Every way a user starts lmms-eval on the E-VAds tasks keeps the same guarantees.

lmms-eval 0.7.3's command line catches an evaluation's errors and exits 0, so the guarantees
live in the tasks' own hooks (``evads_tasks/tasks/outcome.py``, ``judge_pool.py``). Each
launch form is run for real, as a user types it:

- ``lmms_eval``: our console script;
- ``lmms-eval --include_path ...``: lmms-eval's own console script;
- ``python -m lmms_eval --include_path ...``;
- ``LMMS_EVAL_PLUGINS=evads_tasks python -m lmms_eval`` (lmms-eval's plugin variable);
- ``accelerate launch --cpu --num_processes 2 -m lmms_eval`` (accelerate starts one process
  for ``--cpu``);
- ``accelerate launch --multi_gpu --num_processes 2 -m lmms_eval``: two real ranks on gloo,
  with the test plugin's dummy model on the CPU (``tests/plugins/evads_test_ranks``);
- lmms-eval's Python API, ``simple_evaluate``.

Two runs per form: a zero-byte video (stops before any generation, the file named, no judge
call) and a judge that takes 0.4 s to refuse every call (results written, exit 3 (accelerate
turns every failure into 1), the judge held at ``EVADS_JUDGE_CONCURRENCY`` calls at once).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from judge_server import JudgeServer
from paths import REPO
from scaled_dataset import scaled_test_split

from evads_tasks.tasks import INCLUDE_PATH

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
VIDEOS = 24          # 24 questions per task: 12 per rank when two ranks share them
CONCURRENCY = 16
MODEL_ARGS = "response=价格是69.9元。,read_bytes=1"
FORMS = ("lmms_eval", "lmms-eval", "python -m", "plugin", "accelerate --cpu",
         "accelerate 2 ranks")
ACCELERATE = ("accelerate --cpu", "accelerate 2 ranks")


def command(form: str, out: Path, flags: tuple[str, ...] = ()
            ) -> tuple[list[str], dict[str, str]]:
    """The command line of a launch form and the environment it adds."""
    model = "dummy_on_cpu" if form == "accelerate 2 ranks" else "dummy"
    run = ["--model", model, "--model_args", MODEL_ARGS, "--tasks", "evads",
           "--output_path", str(out), "--log_samples", *flags]
    include = ["--include_path", str(INCLUDE_PATH)]
    module = [sys.executable, "-m", "lmms_eval"]
    accelerate = [str(BIN / "accelerate"), "launch"]
    if form == "lmms_eval":
        return [str(BIN / "lmms_eval"), *run], {}
    if form == "lmms-eval":
        return [str(BIN / "lmms-eval"), *include, *run], {}
    if form == "python -m":
        return [*module, *include, *run], {}
    if form == "plugin":
        return [*module, *run], {"LMMS_EVAL_PLUGINS": "evads_tasks"}
    if form == "accelerate --cpu":
        return [*accelerate, "--cpu", "--num_processes", "2", "-m", "lmms_eval", *include,
                *run], {}
    return ([*accelerate, "--multi_gpu", "--num_processes", "2", "--main_process_port", "0",
             "-m", "lmms_eval", *include, *run],
            {"LMMS_EVAL_PLUGINS": "evads_test_ranks",
             "PYTHONPATH": str(REPO / "tests" / "plugins"), "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def dataset(sample_dir, tmp_path_factory) -> Path:
    return scaled_test_split(sample_dir, tmp_path_factory.mktemp("scaled"), VIDEOS)


def run_form(form: str, annotations: Path, out: Path, judge_url: str,
             *flags: str, **settings: str) -> subprocess.CompletedProcess:
    argv, extra = command(form, out, flags)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVADS_", "LMMS_EVAL"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", EVADS_ANNOTATIONS=str(annotations),
               EVADS_JUDGE_BASE_URL=judge_url, EVADS_JUDGE_MODEL="loopback-fake-judge",
               EVADS_JUDGE_API_KEY="sk-LAUNCH-SECRET", EVADS_JUDGE_MAX_ATTEMPTS="1",
               EVADS_JUDGE_CONCURRENCY=str(CONCURRENCY),
               EVADS_CACHE_DIR=str(out.parent / "cache"), **extra)
    env.update(settings)
    return subprocess.run(argv, env=env, cwd=out.parent, capture_output=True, text=True,
                          timeout=900)


def stderr_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("form", FORMS)
def test_a_zero_byte_video_stops_every_form_before_generation(form, dataset, tmp_path):
    broken = tmp_path / "data"
    shutil.copytree(dataset.parent.parent, broken, symlinks=True)
    bad = broken / "videos" / "v00002.mp4"
    bad.unlink()
    bad.write_bytes(b"")
    out = tmp_path / "out"
    with JudgeServer() as server:
        done = run_form(form, broken / "annotations" / "test.parquet", out, server.url)
        calls = server.calls
    lines = stderr_lines(done)
    named = f"error: video file {bad} cannot be decoded: empty file (0 bytes)"
    assert done.returncode != 0, done.stderr[-3000:]
    assert calls == 0 and not list(out.rglob("*_results.json"))
    assert any(line.startswith(named) for line in lines), done.stderr[-3000:]
    if form not in ACCELERATE:  # accelerate prints its own report of the failed rank last
        assert done.returncode == 1 and lines[-1].startswith(named), lines[-3:]
    assert "Postprocessing" not in done.stderr  # nothing was generated
    assert "sk-LAUNCH-SECRET" not in done.stdout + done.stderr


@pytest.mark.parametrize("form", FORMS)
def test_a_judge_refusing_every_call_writes_results_and_fails_every_form(form, dataset,
                                                                         tmp_path):
    out = tmp_path / "out"
    with JudgeServer(latency_s=0.4, faults=lambda index: "500") as server:
        done = run_form(form, dataset, out, server.url)
        calls, in_flight = server.calls, server.max_in_flight
    lines = stderr_lines(done)
    answers = VIDEOS * 5
    assert calls == answers  # one try each (EVADS_JUDGE_MAX_ATTEMPTS=1), none twice
    assert in_flight >= 8, f"{form}: at most {in_flight} judge calls at once"
    (results_path,) = out.rglob("*_results.json")
    results = json.loads(results_path.read_text(encoding="utf-8"))
    assert results["results"]["evads"]["judge_errors,none"] == answers
    assert len(list(results_path.parent.glob("*_samples_evads_*.jsonl"))) == 5
    assert done.returncode == (1 if form in ACCELERATE else 3), done.stderr[-3000:]
    failure = "error: the judge failed on"
    assert any(line.startswith(failure) for line in lines), done.stderr[-3000:]
    if form not in ACCELERATE:
        assert lines[-1].startswith(failure), lines[-3:]
    if form == "accelerate 2 ranks":  # each rank judged its share, rank 0 alone reports
        assert sum(line.startswith(failure) for line in lines) == 1
    assert "sk-LAUNCH-SECRET" not in done.stdout + done.stderr


def test_an_unreachable_judge_stops_at_once_before_generation(dataset, tmp_path):
    with JudgeServer() as server:
        url = server.url  # once stopped, its port is closed: connections are refused
    done = run_form("python -m", dataset, tmp_path / "out", url)
    lines = stderr_lines(done)
    assert done.returncode == 1
    assert lines[-1].startswith("error: the judge is not reachable, so no answer could be "
                                "scored: connection error"), lines[-3:]
    assert "Postprocessing" not in done.stderr and "RetryError" not in done.stderr


def test_the_python_api_raises_a_catchable_stop_and_returns_judge_errors(dataset, tmp_path):
    """``simple_evaluate`` must never end its caller's process: a bad video is a
    ``RunStopped`` it can catch, judge failures are in the results it gets back."""
    script = tmp_path / "api.py"
    script.write_text(
        "import json, sys\n"
        "from lmms_eval.evaluator import simple_evaluate\n"
        "from lmms_eval.tasks import TaskManager\n"
        "from evads_tasks.tasks import INCLUDE_PATH\n"
        "from evads_tasks.tasks.outcome import RunStopped\n"
        "manager = TaskManager(include_path=str(INCLUDE_PATH), include_defaults=False)\n"
        "try:\n"
        "    results = simple_evaluate(model='dummy', model_args=sys.argv[1],\n"
        "                              tasks=['evads_bp'], task_manager=manager)\n"
        "except RunStopped as stopped:\n"
        "    print(json.dumps({'stopped': stopped.lines}))\n"
        "else:\n"
        "    print(json.dumps({'errors': results['results']['evads_bp']['judge_errors,none']}))\n"
        "print('caller goes on')\n", encoding="utf-8")
    broken = tmp_path / "data"
    shutil.copytree(dataset.parent.parent, broken, symlinks=True)
    (broken / "videos" / "v00003.mp4").unlink()
    (broken / "videos" / "v00003.mp4").write_bytes(b"")
    with JudgeServer(faults=lambda index: "500") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
        env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", EVADS_JUDGE_BASE_URL=server.url,
                   EVADS_JUDGE_MODEL="loopback-fake-judge", EVADS_JUDGE_MAX_ATTEMPTS="1",
                   EVADS_CACHE_DIR=str(tmp_path / "cache"))
        outcomes = []
        for annotations in (broken / "annotations" / "test.parquet", dataset):
            done = subprocess.run([sys.executable, str(script), MODEL_ARGS],
                                  env={**env, "EVADS_ANNOTATIONS": str(annotations)},
                                  cwd=REPO, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:]
            *_, result, last = done.stdout.strip().splitlines()
            assert last == "caller goes on"
            outcomes.append(json.loads(result))
    assert outcomes[0]["stopped"][-1].startswith(
        f"error: video file {broken / 'videos' / 'v00003.mp4'} cannot be decoded")
    assert outcomes[1] == {"errors": VIDEOS}


def test_a_predict_only_run_calls_no_judge_and_its_rescore_equals_a_judged_run(dataset,
                                                                              tmp_path):
    """Generate on GPUs, judge anywhere: ``--predict_only`` makes no judge call (none even
    has to answer), and ``rescore`` of its samples gives the means a live-judged run gives."""
    with JudgeServer() as server:
        predicted = run_form("python -m", dataset, tmp_path / "predicted", server.url,
                             "--predict_only",
                             EVADS_JUDGE_BASE_URL="http://127.0.0.1:9/v1")  # nothing there
        assert server.calls == 0
        assert predicted.returncode == 0, predicted.stderr[-3000:]
        live = run_form("python -m", dataset, tmp_path / "live", server.url,
                        EVADS_CACHE_DIR=str(tmp_path / "live-cache"))
        assert live.returncode == 0, live.stderr[-3000:]
        calls_live = server.calls
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
        env.update(EVADS_ANNOTATIONS=str(dataset), EVADS_JUDGE_BASE_URL=server.url,
                   EVADS_JUDGE_MODEL="loopback-fake-judge",
                   EVADS_CACHE_DIR=str(tmp_path / "rescore-cache"))
        rescored = subprocess.run([sys.executable, "-m", "evads_tasks", "rescore",
                                   str(tmp_path / "predicted"), "--out",
                                   str(tmp_path / "judged")],
                                  env=env, cwd=REPO, capture_output=True, text=True,
                                  timeout=600)
        assert rescored.returncode == 0, rescored.stderr[-3000:]
        calls_rescore = server.calls - calls_live
    assert calls_live == calls_rescore == VIDEOS * 5

    def means(folder: Path) -> dict:
        (path,) = folder.rglob("*_results.json")
        results = json.loads(path.read_text(encoding="utf-8"))["results"]
        return {(task, metric): results[task][f"{metric},none"]
                for task in ("evads_bp", "evads_cm", "evads_ml", "evads_ci", "evads_rc",
                             "evads_perception", "evads_reasoning", "evads")
                for metric in ("evads_r5", "evads_r3", "evads_r2", "evads_g")}

    (predicted_path,) = (tmp_path / "predicted").rglob("*_results.json")
    assert "evads_r5,none" not in json.loads(predicted_path.read_text())["results"]["evads_bp"]
    assert means(tmp_path / "judged") == pytest.approx(means(tmp_path / "live"))
