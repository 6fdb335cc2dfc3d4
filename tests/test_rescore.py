"""Score once, judge many times: a real lmms-eval run (dummy model, loopback judge A) judged
again by ``python -m evads_tasks rescore`` with loopback judges that give other verdicts.

- the run's results JSON and report carry VALID and ALL means (scripted judge failures),
  judge tokens summed from the scripted ``usage``, the served models and the warning when
  the served model changed within the run;
- judge B's rescore: B's means, no model library imported, tokens and cost, the error-rate
  exit; ``report`` and ``compare`` read it, and ``compare`` gives the judge agreement;
- judge A's rescore asks again only what A failed on, then makes no call at all;
- a killed rescore resumes without paying twice; ``--dry-run`` counts calls and tokens;
- the authors' ``final_results.csv`` as the run; a run logged without the judge's inputs;
- ``make rescore``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from judge_server import GARBAGE_REPLY, JudgeServer
from make_runner import run_make
from paths import OFFICIAL_SCRIPT, REPO, needs_official_eval
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from evads_tasks.core.annotations import TASK_CODES, TASKS, load_annotations
from evads_tasks.core.judge.prompts import SECTION_METADATA, SECTION_QUESTION, read_sections
from evads_tasks.core.scoring import LEVELS
from evads_tasks.tasks.metrics import METRICS

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
GROUPS = {"evads_perception": ("BP", "CM"), "evads_reasoning": ("ML", "CI", "RC"),
          "evads": TASK_CODES}
# Judge A fails these questions in the run (an unparseable reply, asked twice), then recovers.
FAILED_IN_RUN = (0, 13, 26)
# Runs the command as a user would and says which model libraries it imported.
RESCORE = ("import sys; from evads_tasks.__main__ import main; status = main(sys.argv[1:]); "
           "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
           "{'torch', 'transformers', 'lmms_eval', 'vllm'}); "
           "print('model libraries imported:', heavy, file=sys.stderr); sys.exit(status)")


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", **settings)
    return env


def _judge_env(server: JudgeServer, model: str, cache: Path, **settings: str) -> dict:
    return _env(EVADS_JUDGE_BASE_URL=server.url, EVADS_JUDGE_MODEL=model,
                EVADS_CACHE_DIR=str(cache), EVADS_JUDGE_MAX_ATTEMPTS="1", **settings)


class ScriptedJudge:
    """A loopback judge's policy: each question's level from a formula of its index; the
    ``failing`` questions get an unparseable reply (the first ``recover_after`` times they
    are asked, or always)."""

    def __init__(self, records: list, level_of, failing: frozenset[str] = frozenset(),
                 recover_after: int | None = None):
        self.levels = {r.question_id: level_of(i) for i, r in enumerate(records)}
        self.failing, self.recover_after = failing, recover_after
        self.asked: Counter = Counter()
        self._lock = threading.Lock()
        self._ids = {(r.question.strip(), r.metadata_text().strip()): r.question_id
                     for r in records}
        assert len(self._ids) == len(records)

    def __call__(self, messages: list[dict]) -> str:
        sections = read_sections(str(messages[-1]["content"]))
        qid = self._ids[(sections[SECTION_QUESTION], sections[SECTION_METADATA])]
        with self._lock:
            self.asked[qid] += 1
            asked = self.asked[qid]
        if qid in self.failing and (self.recover_after is None or asked <= self.recover_after):
            return GARBAGE_REPLY
        return f"Scripted loopback verdict.\nAnswer: {self.levels[qid]}"


@dataclass
class RunA:
    out: Path
    server: JudgeServer
    judge: ScriptedJudge
    records: list
    cache: Path
    results: dict
    samples: list[dict]
    output: str

    def env(self, **settings: str) -> dict:
        return _judge_env(self.server, "judge-a", self.cache, **settings)


@pytest.fixture(scope="module")
def sample_records(sample_dir):
    return sorted(load_annotations(sample_dir / "annotations" / "test.parquet"),
                  key=lambda r: r.question_id)


@pytest.fixture(scope="module")
def run_a(sample_dir, sample_records, tmp_path_factory):
    """The dummy model's run judged by A (served as two snapshots: the alias moves after
    call 20; 100 prompt + 10 completion tokens a reply; three questions fail)."""
    root = tmp_path_factory.mktemp("run_a")
    failing = frozenset(sample_records[i].question_id for i in FAILED_IN_RUN)
    judge = ScriptedJudge(sample_records, lambda i: LEVELS[i % 5], failing, recover_after=2)
    served = lambda index: "judge-a-0701" if index < 20 else "judge-a-0901"  # noqa: E731
    with JudgeServer(judge, served_model=served,
                     usage=lambda index, text: {"prompt_tokens": 100,
                                                "completion_tokens": 10}) as server:
        run = RunA(root / "out", server, judge, sample_records, root / "cache", {}, [], "")
        env = run.env(EVADS_ANNOTATIONS=str(sample_dir / "annotations" / "test.parquet"),
                      EVADS_VIDEO_DIR=str(sample_dir / "videos"),
                      EVADS_MAX_JUDGE_ERROR_RATE="1")
        done = subprocess.run(
            [str(BIN / "lmms_eval"), "--model", "dummy", "--model_args",
             "response=a fixed answer,read_bytes=1", "--tasks", "evads", "--output_path",
             str(run.out), "--log_samples"], env=env, cwd=REPO, capture_output=True,
            text=True, timeout=600)
        (results,) = run.out.rglob("*_results.json")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        run.results = json.loads(results.read_text(encoding="utf-8"))
        run.samples = [json.loads(line) for path in sorted(results.parent.glob("*_samples_*"))
                       for line in path.read_text(encoding="utf-8").splitlines()]
        run.output = done.stdout + done.stderr
        yield run


def _expected(records: list, levels: dict[str, float | None]) -> dict[str, dict]:
    """Per task and group: VALID (judged only) and ALL (a failure counts 0) of each metric,
    and the failure count, computed here from the scripted verdicts."""
    rows = {}
    for code in TASK_CODES:
        scores = [levels[r.question_id] for r in records if r.task == code]
        judged = [s for s in scores if s is not None]
        row = {"judge_errors": len(scores) - len(judged), "questions": len(scores)}
        for name, metric in METRICS.items():
            row[name] = sum(metric(s) for s in judged) / len(judged)
            row[name + "_all"] = sum(metric(s) for s in judged) / len(scores)
        rows[code] = row
    for group, members in GROUPS.items():
        size = sum(rows[c]["questions"] for c in members)
        rows[group] = {name: sum(rows[c][name] * rows[c]["questions"] for c in members) / size
                       for name in rows["BP"] if name not in ("questions", "judge_errors")}
        rows[group]["judge_errors"] = sum(rows[c]["judge_errors"] for c in members)
    return rows


def _check_results(results: dict, expected: dict[str, dict]) -> None:
    for key, row in expected.items():
        name = f"evads_{key.lower()}" if key in TASKS else key
        got = results["results"][name]
        assert got["judge_errors,none"] == row["judge_errors"], name
        for metric in METRICS:
            assert got[f"{metric},none"] == pytest.approx(row[metric]), (name, metric)
            assert got[f"{metric}_all,none"] == pytest.approx(row[metric + "_all"]), name


def _rescore(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "python"), "-c", RESCORE, "rescore", *map(str, args)],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _results(folder: Path) -> dict:
    newest = max(folder.glob("*_results.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text(encoding="utf-8"))


def _row(markdown: str, name: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")[1:]]


# ---- the run itself ----------------------------------------------------------------------

def test_a_run_reports_valid_and_all_means_tokens_and_served_models(run_a):
    failed = {s["judge_errors"]["question_id"] for s in run_a.samples
              if s["judge_errors"]["error"] is not None}
    assert failed == run_a.judge.failing
    levels = {qid: None if qid in failed else level for qid, level in run_a.judge.levels.items()}
    expected = _expected(run_a.records, levels)
    _check_results(run_a.results, expected)
    assert expected["evads"]["evads_r5_all"] < expected["evads"]["evads_r5"]

    usage = run_a.results["results"]["evads"]["judge_usage,none"]
    replies = 40 + len(FAILED_IN_RUN)  # an unparseable reply is asked again: paid twice
    assert (usage["verdicts"], usage["calls"], usage["cached"]) == (40, replies, 0)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (100 * replies, 10 * replies)
    assert usage["without_usage"] == 0
    assert usage["requested_models"] == ["judge-a"]
    assert set(usage["served_models"]) == {"judge-a-0701", "judge-a-0901"}
    per_task = [run_a.results["results"][f"evads_{c.lower()}"]["judge_usage,none"]
                for c in TASK_CODES]
    assert sum(u["prompt_tokens"] for u in per_task) == usage["prompt_tokens"]
    assert "its alias changed within this run" in run_a.output  # logged as it happened

    subprocess.run([str(BIN / "python"), "-m", "evads_tasks", "report", str(run_a.out)],
                   cwd=REPO, check=True, capture_output=True,
                   env=_env(EVADS_JUDGE_PRICE="0.8,2"))
    report = next(run_a.out.rglob("evads_report.md")).read_text(encoding="utf-8")
    cells = _row(report, "Overall")
    assert cells[:3] == ["40", str(40 - len(FAILED_IN_RUN)), str(len(FAILED_IN_RUN))]
    assert float(cells[3].split()[0]) == pytest.approx(expected["evads"]["evads_r5"], abs=5e-5)
    assert float(cells[7].split()[0]) == pytest.approx(expected["evads"]["evads_r5_all"], abs=5e-5)
    assert "| R5 | R3 | R2 | G | R5 ALL | R3 ALL | R2 ALL | G ALL |" in report
    assert "**WARNING: the judge server answered as 2 different models" in report
    all_row = _row(report, "all")
    assert all_row[:5] == ["40", str(replies), "0", f"{100 * replies:,}", f"{10 * replies:,}"]
    assert float(all_row[7]) == pytest.approx((100 * replies * 0.8 + 10 * replies * 2) / 1e6,
                                              abs=5e-5)


# ---- judge B --------------------------------------------------------------------------------

def test_judge_b_rescores_the_run_without_a_model(run_a, tmp_path):
    failing = frozenset({run_a.records[7].question_id})
    judge_b = ScriptedJudge(run_a.records, lambda i: LEVELS[(3 * i + 2) % 5], failing)
    out = tmp_path / "rescored-b"
    with JudgeServer(judge_b, usage=lambda index, text: {"prompt_tokens": 7,
                                                         "completion_tokens": 3}) as server:
        env = _judge_env(server, "judge-b", tmp_path / "cache-b", EVADS_JUDGE_PRICE="0.8,2",
                         EVADS_VIDEO_DIR=str(tmp_path / "no-videos-here"))
        plan = _rescore(run_a.out, "--out", out, "--dry-run", env=env)
        assert plan.returncode == 0, plan.stderr
        # nothing written; one call: the timed preflight, whose verdict goes to the cache
        assert not out.exists() and server.calls == 1
        assert "preflight: one timed call to judge-b @ " in plan.stdout
        assert "judge calls       40" in plan.stdout and "in the cache      0" in plan.stdout
        estimated = int(plan.stdout.split("tokens (est.)     ~")[1].split()[0].replace(",", ""))
        assert estimated > 40 * 200  # the rubric and the sample's metadata, 40 times

        started = time.monotonic()
        done = _rescore(run_a.out, "--out", out, env=env)
        wall_s = time.monotonic() - started
        calls = server.calls
        again = _rescore(run_a.out, "--out", tmp_path / "again", "--dry-run", env=env)
    print(f"rescore by judge B: {calls} calls, {wall_s:.1f} s wall (process included)")
    # one failure in 40 is above the default 2% error rate: results written, exit 3
    assert done.returncode == 3, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-2].startswith("error: the judge failed on 1 of 40")
    assert "no model is loaded" in done.stderr and "no model is loaded" in done.stdout
    assert "model libraries imported: []" in done.stderr
    assert calls == 40 + 1  # the garbage reply is asked once more; the dry run's verdict kept
    assert "in the cache      39" in again.stdout and "judge calls       1" in again.stdout

    results = _results(out)
    levels = {qid: None if qid in failing else level for qid, level in judge_b.levels.items()}
    _check_results(results, _expected(run_a.records, levels))
    assert results["evads"]["rescore"]["no_model_loaded"] is True
    assert results["evads"]["rescore"]["source"].startswith(str(run_a.out))
    assert results["config"]["model"] == "dummy"  # the model that made the predictions
    usage = results["results"]["evads"]["judge_usage,none"]
    # 39 verdicts paid now (the failed one twice), one from the dry run's timed call
    assert (usage["calls"], usage["prompt_tokens"], usage["completion_tokens"]) == (40, 280, 120)
    assert (usage["cached"], usage["cached_prompt_tokens"]) == (1, 7)
    assert usage["cost"] == pytest.approx((280 * 0.8 + 120 * 2) / 1e6)
    assert usage["requested_models"] == ["judge-b"] and usage["served_models"] == {"judge-b": 40}

    report = (out / "evads_report.md").read_text(encoding="utf-8")
    assert "**no model was loaded**" in report and "judge-b @ " in report
    assert (out / "evads_report.png").is_file()
    shown = subprocess.run([str(BIN / "python"), "-m", "evads_tasks", "report", str(out)],
                           cwd=REPO, capture_output=True, text=True, env=_env())
    assert shown.returncode == 0 and "rescore: logged predictions judged again" in shown.stdout

    compared = subprocess.run(
        [str(BIN / "python"), "-m", "evads_tasks", "compare", str(run_a.out), str(out),
         "--out", str(tmp_path / "compare.md")], cwd=REPO, capture_output=True, text=True,
        env=_env())
    assert compared.returncode == 0, compared.stderr
    a_scores = {s["judge_errors"]["question_id"]: s["judge_errors"]["judge_score"]
                for s in run_a.samples}
    pairs = [(a_scores[qid], b) for qid, b in levels.items()
             if a_scores[qid] is not None and b is not None]
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    index = {level: i for i, level in enumerate(LEVELS)}
    kappa = cohen_kappa_score([index[x] for x in xs], [index[y] for y in ys],
                              weights="quadratic", labels=list(range(5)))
    rho = spearmanr(xs, ys).statistic
    exact = sum(x == y for x, y in pairs) / len(pairs)
    cells = _row(compared.stdout.split("## Judge agreement")[1], "all")
    print(f"judge agreement A vs B over {len(pairs)} pairs: exact {exact:.4f}, "
          f"kappa {kappa:.4f}, Spearman {rho:.4f}, shift {cells[4]} {cells[5]}")
    assert cells[0] == str(len(pairs))
    assert float(cells[1]) == pytest.approx(exact, abs=5e-5)
    assert float(cells[2]) == pytest.approx(kappa, abs=5e-5)
    assert float(cells[3]) == pytest.approx(rho, abs=5e-5)
    shift = sum(ys) / len(ys) - sum(xs) / len(xs)
    assert float(cells[4]) == pytest.approx(shift, abs=5e-5)
    low, high = (float(x) for x in cells[5].strip("[]").split(","))
    assert low <= shift <= high
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert "![confusion matrix" in (tmp_path / "compare.md").read_text(encoding="utf-8")


# ---- judge A again ---------------------------------------------------------------------------

def test_judge_a_asks_only_what_it_failed_on_then_nothing(run_a, tmp_path):
    before = run_a.server.calls
    first = _rescore(run_a.out, "--out", tmp_path / "a1", env=run_a.env())
    assert first.returncode == 0, first.stderr
    assert run_a.server.calls - before == len(FAILED_IN_RUN)  # the failures, asked again
    _check_results(_results(tmp_path / "a1"), _expected(run_a.records, run_a.judge.levels))

    before = run_a.server.calls
    second = _rescore(run_a.out, "--out", tmp_path / "a2", env=run_a.env())
    assert second.returncode == 0, second.stderr
    assert run_a.server.calls == before  # an unchanged judge: no call at all
    assert "40 judged now, 0 judge call(s)" in second.stdout
    results = _results(tmp_path / "a2")
    _check_results(results, _expected(run_a.records, run_a.judge.levels))
    usage = results["results"]["evads"]["judge_usage,none"]
    assert (usage["calls"], usage["cached"]) == (0, 40)
    assert usage["cached_prompt_tokens"] == 100 * 40  # the cache kept each verdict's tokens
    # a rescore of a rescore reads like any run
    third = _rescore(tmp_path / "a2", "--out", tmp_path / "a3", env=run_a.env())
    assert third.returncode == 0 and run_a.server.calls == before
    for inside in (run_a.out, run_a.out / "rescored"):  # the run's own folder is refused
        refused = _rescore(run_a.out, "--out", inside, env=run_a.env())
        assert refused.returncode == 2 and "write the rescore to a folder of its own" in (
            refused.stderr)
    assert not (run_a.out / "rescored").exists()


@needs_official_eval
def test_the_authors_protocol_judges_the_same_predictions(run_a, tmp_path):
    """``--protocol official``: the authors' message and call, their parse rule (any number
    after the last ``Answer:``), every answer sent."""
    with JudgeServer(lambda messages: "Their judge.\nAnswer:0.75") as server:
        done = _rescore(run_a.out, "--out", tmp_path / "official", "--protocol", "official",
                        env=_judge_env(server, "qwen-plus", tmp_path / "cache",
                                       EVADS_OFFICIAL_EVAL=str(OFFICIAL_SCRIPT)))
        bodies = list(server.requests)
    assert done.returncode == 0, done.stderr
    assert len(bodies) == 40 and all(len(b["messages"]) == 1 for b in bodies)
    assert all(b["messages"][0]["role"] == "user" and b.get("seed") == 42 for b in bodies)
    results = _results(tmp_path / "official")
    assert results["results"]["evads"]["evads_r5,none"] == pytest.approx(0.75)
    assert results["results"]["evads"]["evads_r3,none"] == pytest.approx(0.5)
    assert results["evads"]["rescore"]["protocol"] == "official"
    report = (tmp_path / "official" / "evads_report.md").read_text(encoding="utf-8")
    assert "- protocol: official (the authors' evaluation script)" in report


# ---- resume, the authors' output, old runs, make -----------------------------------------

def test_a_killed_rescore_resumes_without_paying_twice(run_a, tmp_path):
    judge_c = ScriptedJudge(run_a.records, lambda i: LEVELS[(i + 1) % 5])
    out = tmp_path / "resumed"
    with JudgeServer(judge_c, latency_s=0.15) as server:
        env = _judge_env(server, "judge-c", tmp_path / "cache-c", EVADS_JUDGE_CONCURRENCY="2")
        killed = subprocess.Popen(
            [str(BIN / "python"), "-m", "evads_tasks", "rescore", str(run_a.out), "--out",
             str(out)], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        progress = out / "rescore_progress.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (
                not progress.exists() or len(progress.read_text().splitlines()) < 11):
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        kept = 0
        for line in progress.read_text().splitlines()[1:]:
            try:
                kept += bool(json.loads(line))
            except json.JSONDecodeError:  # a line the kill cut short: judged again
                pass
        assert 10 <= kept < 40
        resumed = _rescore(run_a.out, "--out", out, env=env)
        calls = server.calls
    assert resumed.returncode == 0, resumed.stderr
    assert f"{40 - kept} judged now" in resumed.stdout
    assert calls <= 40 + 2  # at most the calls in flight at the kill are paid twice
    _check_results(_results(out), _expected(run_a.records, judge_c.levels))
    with JudgeServer() as other:
        refused = _rescore(run_a.out, "--out", out,
                           env=_judge_env(other, "judge-d", tmp_path / "cache-d"))
    assert refused.returncode == 2
    assert "holds a rescore of another source, judge or protocol" in refused.stderr
    assert "--fresh" in refused.stderr


def test_the_authors_final_results_csv_is_judged_again(run_a, sample_dir, tmp_path):
    rows = pd.read_parquet(sample_dir / "annotations" / "test.parquet")
    rows["prediction"] = "<answer>" + rows["answer"].str[:6] + "</answer>"
    theirs = {r.question_id: run_a.judge.levels[r.question_id] for r in run_a.records}
    rows["score_R5"] = rows["ques_id"].map(theirs)
    rows.loc[0, "score_R5"] = None  # their judge failed there: kept, not scored
    csv = tmp_path / "final_results.csv"
    rows.to_csv(csv, index=False)
    judge_b = ScriptedJudge(run_a.records, lambda i: LEVELS[(3 * i + 2) % 5])
    out = tmp_path / "authors-rescored"
    with JudgeServer(judge_b) as server:
        done = _rescore(csv, "--out", out,
                        env=_judge_env(server, "judge-b", tmp_path / "cache"))
        sent = "".join(r["messages"][-1]["content"] for r in server.requests)
    assert done.returncode == 0, done.stderr
    assert all(f"[Model answer]\n{a[:6]}" in sent for a in rows["answer"])
    _check_results(_results(out), _expected(run_a.records, judge_b.levels))
    compared = subprocess.run([str(BIN / "python"), "-m", "evads_tasks", "compare", str(csv),
                               str(out)], cwd=REPO, capture_output=True, text=True, env=_env())
    assert compared.returncode == 0, compared.stderr
    assert _row(compared.stdout.split("## Judge agreement")[1], "all")[0] == "39"


def test_a_run_logged_without_the_judges_inputs_takes_them_from_the_dataset(
        run_a, sample_dir, tmp_path):
    old = tmp_path / "old-run"
    old.mkdir()
    for path in run_a.out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl"):
            lines = path.read_text(encoding="utf-8").splitlines()
            if path.suffix == ".jsonl":
                lines = [json.dumps({**s, "judge_errors": {
                    k: v for k, v in s["judge_errors"].items() if k != "inputs"}})
                    for s in map(json.loads, lines)]
            (old / path.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused = _rescore(old, "--out", tmp_path / "x", env=run_a.env())
    assert refused.returncode == 2
    assert "do not keep the judge's inputs" in refused.stderr
    assert "--annotations FILE" in refused.stderr
    done = _rescore(old, "--out", tmp_path / "y", "--annotations",
                    sample_dir / "annotations" / "test.parquet", env=run_a.env())
    assert done.returncode == 0, done.stderr
    _check_results(_results(tmp_path / "y"), _expected(run_a.records, run_a.judge.levels))


def test_make_rescore(run_a, tmp_path):
    venv = Path(sys.executable).parents[1]
    usage = run_make("-o", f"{venv}/.installed", "rescore", f"VENV={venv}", env=_env())
    assert usage.returncode != 0 and "RUN is required" in usage.stdout
    out = tmp_path / "made"
    done = run_make("-o", f"{venv}/.installed", "rescore", f"VENV={venv}", f"RUN={run_a.out}",
                    f"OUT={out}", "RESCORE_FLAGS=--dry-run", env=run_a.env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f'rescore "{run_a.out}" --out "{out}"' in done.stdout
    assert "predictions       40" in done.stdout
