"""The modality audit end to end, as a user runs it: real lmms-eval runs of the condition
tasks on the bundled sample, then ``python -m evads_tasks audit`` and the training filter.

- the tiny RANDOM Qwen2.5-VL through lmms-eval's ``qwen2_5_vl`` class runs every condition
  (one run holding four of them, another the text-only one, rescored once), judged over HTTP
  by a loopback judge whose verdict is a hash of the question and the answer (scripted, not a
  model: the random model's gibberish would score 0 everywhere with a judge that reads it,
  and the gaps would not tell a subtraction from its reverse);
- lmms-eval's own ``openai`` model pointed at a loopback text LLM (a stand-in that answers
  with the start of the prompt it gets) runs the text-only and blind conditions without a GPU;
  the fake judge that checks the reference's text scores it;
- ``audit --export-filter`` on that run, then ``make rl EXCLUDE=FILE`` trains on the rows left.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from judge_server import JudgeServer
from make_runner import run_make
from paths import REPO
from test_lmms_eval_runs import BIN, _env, _run

from evads_tasks.core.annotations import TASK_CODES, load_annotations
from evads_tasks.core.judge.prompts import SECTION_ANSWER, SECTION_QUESTION, read_sections
from evads_tasks.core.scoring import LEVELS
from evads_tasks.runs.report import task_label
from evads_tasks.sample.tiny_model import ensure_tiny_vlm

pytestmark = pytest.mark.slow

GAP_RUNS = {"Blind Gap": "blind", "Visual Gain": "textonly", "Text Gain": "videoonly",
            "Temporal Gain": "oneframe"}
# The audit's rows and the lmms-eval task or group (less the condition) each one matches.
ROWS = {**{task_label(code): f"_{code.lower()}" for code in TASK_CODES},
        "Perception": "_perception", "Cognition & Reasoning": "_reasoning", "Overall": ""}


def hashed_verdict(messages) -> str:
    """A scripted judge: the level is a hash of the question and the judged answer."""
    sections = read_sections(str(messages[-1]["content"]))
    digest = hashlib.sha256((sections[SECTION_QUESTION] + "\0" + sections[SECTION_ANSWER])
                            .encode("utf-8")).digest()
    return f"Scripted loopback judge (not a model).\nAnswer: {LEVELS[digest[0] % 5]}"


def echoing_llm(messages) -> str:
    """A stand-in text LLM (not a model): answers with the first 300 characters it is given."""
    content = messages[-1]["content"]
    text = content if isinstance(content, str) else "".join(
        part.get("text", "") for part in content if part.get("type") == "text")
    return text[:300]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "python"), "-m", "evads_tasks", *args], cwd=REPO,
                          capture_output=True, text=True, env=_env(), timeout=600)


def _logged(run: Path) -> dict[str, dict[str, float]]:
    """Per lmms-eval task, each question's judge score, read from the sample logs."""
    scores: dict[str, dict[str, float]] = {}
    for path in run.rglob("*_samples_*.jsonl"):
        task = path.name.split("_samples_", 1)[1].removesuffix(".jsonl")
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)["judge_errors"]
            scores.setdefault(task, {})[record["question_id"]] = record["judge_score"]
    return scores


@pytest.fixture(scope="module")
def tiny_runs(sample_dir, tmp_path_factory) -> dict[str, Path]:
    """Two lmms-eval runs of the tiny model (4 questions per task), the second rescored."""
    model = ensure_tiny_vlm("qwen2_5_vl", root=REPO / "runs" / "models")
    root = tmp_path_factory.mktemp("audit")
    runs = {}
    with JudgeServer(hashed_verdict) as judge:
        env = _env(EVADS_ANNOTATIONS=str(sample_dir / "annotations" / "test.parquet"),
                   EVADS_VIDEO_DIR=str(sample_dir / "videos"), EVADS_JUDGE_BASE_URL=judge.url,
                   EVADS_JUDGE_MODEL="loopback-scripted-judge",
                   EVADS_CACHE_DIR=str(root / "cache"))
        for name, tasks in (("video", "evads,evads_videoonly,evads_oneframe,evads_blind"),
                            ("text", "evads_textonly")):
            runs[name] = root / name
            _run([str(BIN / "lmms_eval"), "--model", "qwen2_5_vl", "--model_args",
                  f"pretrained={model},device=cpu,device_map=cpu,fps=1,max_pixels=12544,"
                  "min_pixels=3136", "--tasks", tasks, "--limit", "4",
                  "--gen_kwargs", "max_new_tokens=8", "--output_path", str(runs[name]),
                  "--log_samples"], env, runs[name])
        runs["rescored"] = root / "rescored"
        done = subprocess.run([str(BIN / "python"), "-m", "evads_tasks", "rescore",
                               str(runs["text"]), "--out", str(runs["rescored"])], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return runs


def _results(run: Path) -> dict:
    return json.loads(sorted(run.rglob("*_results.json"))[-1].read_text(encoding="utf-8"))


def test_audit_gaps_are_the_differences_of_the_runs_own_means(tiny_runs, tmp_path):
    out = tmp_path / "audit"
    done = _cli("audit", str(tiny_runs["video"]), str(tiny_runs["text"]), "--out", str(out))
    assert done.returncode == 0, done.stderr
    figures = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    rows = {**figures["rows"]["tasks"], **figures["rows"]["dimensions"]}
    means = {**_results(tiny_runs["video"])["results"], **_results(tiny_runs["text"])["results"]}
    nonzero = 0
    for label, suffix in ROWS.items():
        row = rows[label]
        full = means[f"evads{suffix}"]["evads_r5,none"]
        assert row["means"]["full"]["value"] == pytest.approx(full, abs=1e-12)
        for gap, condition in GAP_RUNS.items():
            other = means[f"evads_{condition}{suffix}"]["evads_r5,none"]
            assert row["means"][condition]["value"] == pytest.approx(other, abs=1e-12)
            assert row[gap]["value"] == pytest.approx(full - other, abs=1e-12), (label, gap)
            assert row[gap]["low"] <= row[gap]["value"] <= row[gap]["high"]
            nonzero += row[gap]["value"] != 0
    assert nonzero > 10  # the check above can tell full - other from other - full
    overall = rows["Overall"]
    assert overall["Visual Gain"]["n"] == 20 and overall["Visual Gain"]["videos"] == 4
    assert overall["Visual Gain"]["low"] < overall["Visual Gain"]["high"]

    logged = _logged(tiny_runs["video"]) | _logged(tiny_runs["text"])
    full = {q: s for code in TASK_CODES for q, s in logged[f"evads_{code.lower()}"].items()}
    text = {q: s for code in TASK_CODES
            for q, s in logged[f"evads_textonly_{code.lower()}"].items()}
    assert overall["shortcut share"]["value"] == pytest.approx(
        sum(text[q] >= full[q] for q in full) / len(full))
    with (out / "audit_questions.csv").open(encoding="utf-8") as handle:
        table = {row["question_id"]: row for row in csv.DictReader(handle)}
    assert {q: float(table[q]["full"]) for q in full} == full
    assert {q: float(table[q]["textonly"]) for q in text} == text
    report = (out / "audit_report.md").read_text(encoding="utf-8")
    assert "tiny RANDOM model" in report and "means nothing" in report
    assert "| Overall | 20 | " in report and (out / "audit_report.png").stat().st_size > 0


def test_a_rescored_run_is_read_as_its_condition(tiny_runs, tmp_path):
    first = _cli("audit", str(tiny_runs["video"]), str(tiny_runs["text"]), "--out",
                 str(tmp_path / "a"))
    again = _cli("audit", str(tiny_runs["video"]), str(tiny_runs["rescored"]), "--out",
                 str(tmp_path / "b"))
    assert first.returncode == again.returncode == 0, again.stderr
    rows = [json.loads((tmp_path / name / "audit.json").read_text(encoding="utf-8"))["rows"]
            for name in ("a", "b")]
    assert rows[0] == rows[1]
    rescored = _results(tiny_runs["rescored"])["results"]
    assert {"evads_textonly", "evads_textonly_bp", "evads_textonly_reasoning"} <= set(rescored)
    assert not any(name in rescored for name in ("evads", "evads_bp"))


def test_a_run_of_several_conditions_is_for_audit_not_report(tiny_runs, tmp_path):
    report = _cli("report", str(tiny_runs["text"]))
    assert report.returncode == 0 and "condition text only (no video)" in report.stdout
    mixed = _cli("report", str(tiny_runs["video"]))
    assert mixed.returncode == 2
    assert "holds the tasks of 4 modality conditions" in mixed.stderr
    assert f"python -m evads_tasks audit {tiny_runs['video']}" in mixed.stderr
    twice = _cli("audit", str(tiny_runs["text"]), str(tiny_runs["rescored"]), "--out",
                 str(tmp_path))
    assert twice.returncode == 2 and "condition textonly is in" in twice.stderr


@pytest.fixture(scope="module")
def api_run(sample_dir, tmp_path_factory) -> tuple[Path, list[dict], list]:
    """evads_textonly and evads_blind on the sample's RL rows, with lmms-eval's openai model
    and a loopback text LLM (key and URL from the environment, as the README says)."""
    out = tmp_path_factory.mktemp("api") / "run"
    with JudgeServer(echoing_llm, model="loopback-text-llm") as llm, JudgeServer() as judge:
        env = _env(EVADS_ANNOTATIONS=str(sample_dir / "annotations" / "rl.parquet"),
                   EVADS_VIDEO_DIR=str(sample_dir / "videos"), EVADS_JUDGE_BASE_URL=judge.url,
                   EVADS_JUDGE_MODEL="loopback-fake-judge",
                   EVADS_CACHE_DIR=str(out.parent / "cache"),
                   OPENAI_API_BASE=llm.url, OPENAI_API_KEY="EMPTY")
        _run([str(BIN / "lmms_eval"), "--model", "openai", "--model_args",
              "model=loopback-text-llm", "--tasks", "evads_textonly,evads_blind",
              "--output_path", str(out), "--log_samples"], env, out)
        requests = list(llm.requests)
    return out, requests, load_annotations(sample_dir / "annotations" / "rl.parquet")


def test_an_api_text_model_runs_the_conditions_without_video(api_run):
    _, requests, records = api_run
    assert len(requests) == 2 * len(records)
    texts = []
    for request in requests:
        (message,) = request["messages"]
        assert [part["type"] for part in message["content"]] == ["text"]  # no image, no video
        texts.append(message["content"][0]["text"])
    with_events = [t for t in texts if "[Time-aligned Events]" in t]
    assert len(with_events) == len(records)  # the text-only prompts; blind ones lack them
    assert {request["model"] for request in requests} == {"loopback-text-llm"}


def test_export_filter_then_make_rl_trains_on_the_rows_left(api_run, sample_dir, tmp_path):
    run, _, records = api_run
    filter_file = tmp_path / "answerable_without_video.json"
    done = _cli("audit", str(run), "--out", str(tmp_path / "audit"), "--export-filter",
                str(filter_file))
    assert done.returncode == 0, done.stderr
    text = {q: s for task, scores in _logged(run).items() if task.startswith("evads_textonly")
            for q, s in scores.items()}
    expected = sorted(q for q, s in text.items() if s >= 0.75)
    written = json.loads(filter_file.read_text(encoding="utf-8"))
    assert written["question_ids"] == expected and written["threshold"] == 0.75
    assert 0 < len(expected) < len(records)
    assert "gaps need it; means only" in done.stdout

    out = tmp_path / "rl"
    venv = Path(BIN).parent
    trained = run_make("-o", f"{venv}/.installed", "rl", f"VENV={venv}",
                       f"EXCLUDE={filter_file}",
                       f"RL_FLAGS=--output-dir {out} --set data.limit=null", env=_env())
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    for stage, split in (("sft", "sft"), ("grpo", "rl")):
        rows = pq.read_table(sample_dir / "annotations" / f"{split}.parquet").to_pylist()
        ids = [row["extra_info"]["id"] for row in rows]
        left = [q for q in ids if q not in set(expected)]
        note = json.loads((out / stage / "final" / "evads_training.json").read_text())
        assert note["rows"] == len(left) and note["exclude"] == str(filter_file), stage
        assert (f"{len(left)} of {len(ids)} rows kept, {len(ids) - len(left)} excluded"
                in trained.stdout)
