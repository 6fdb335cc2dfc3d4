"""Error bars on real lmms-eval runs of the sample: two ``lmms_eval`` runs of lmms-eval's
``dummy`` model with different canned answers, judged by the loopback judge over HTTP.

- lmms-eval's printed table shows numbers, not N/A, in its Stderr column for every E-VAds
  mean, task and group rows alike, and its results JSON holds each mean's standard error
  clustered by video and 95% interval: checked against the CR1 formula written out here
  over the logged samples (a group's clusters a video's questions across its tasks);
- the report and a rescore give the same intervals, and the report says how they were made;
- ``compare`` of the two runs gives paired intervals that exclude 0, and of a run with
  itself intervals that contain 0; ``paired_comparison`` is what it prints;
- the run checked the judge canary first and its report records it.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from itertools import groupby
from pathlib import Path

import pytest
from judge_server import GARBAGE_REPLY, JudgeServer, fake_judge_policy
from paths import REPO

from evads_tasks.core.annotations import load_annotations
from evads_tasks.core.judge.canary import load_items
from evads_tasks.core.judge.prompts import SECTION_METADATA, SECTION_QUESTION, read_sections
from evads_tasks.runs.compare import paired_comparison
from evads_tasks.runs.scored_runs import load_scored
from evads_tasks.tasks.metrics import INTERVAL_METRICS

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
MODEL = "loopback-fake-judge"
GROUPS = {"evads": ("evads_bp", "evads_cm", "evads_ml", "evads_ci", "evads_rc"),
          "evads_perception": ("evads_bp", "evads_cm"),
          "evads_reasoning": ("evads_ml", "evads_ci", "evads_rc")}


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", **settings)
    return env


def _canned(records, videos: set[str]) -> str:
    """A dummy model's one reply: the reference answers of ``videos`` run together (the
    loopback judge scores by overlap with the reference), without model_args' , and =."""
    return "".join(r.answer for r in records if r.video_id in videos).replace(
        ",", " ").replace("=", " ")


class Runs:
    """Run A (canned answer: video 1's references; the judge fails on one question) and run B
    (every video's references), their output, results JSON and logged samples."""

    def __init__(self, sample_dir: Path, root: Path) -> None:
        self.records = load_annotations(sample_dir / "annotations" / "test.parquet")
        videos = sorted({r.video_id for r in self.records})
        failing = next(r for r in self.records if r.video_id == videos[1] and r.task == "CI")

        def policy(messages):
            sections = read_sections(str(messages[-1]["content"]))
            asked = (sections.get(SECTION_QUESTION, "").strip(),
                     sections.get(SECTION_METADATA, "").strip())
            return GARBAGE_REPLY if asked == (failing.question, failing.metadata_text().strip()) \
                else fake_judge_policy(messages)

        self.root = root
        with JudgeServer(policy) as server:
            self.env = _env(EVADS_ANNOTATIONS=str(sample_dir / "annotations" / "test.parquet"),
                            EVADS_VIDEO_DIR=str(sample_dir / "videos"),
                            EVADS_JUDGE_BASE_URL=server.url, EVADS_JUDGE_MODEL=MODEL,
                            EVADS_JUDGE_MAX_ATTEMPTS="1", EVADS_CACHE_DIR=str(root / "cache"),
                            EVADS_MAX_JUDGE_ERROR_RATE="0.2")
            pinned = self.python("canary", "--pin")
            assert pinned.returncode == 0, pinned.stderr
            self.a, self.table_a = self.run("a", _canned(self.records, {videos[0]}))
            self.b, _ = self.run("b", _canned(self.records, set(videos)))
            rescored = self.python("rescore", str(root / "a"), "--out", str(root / "a-again"))
            assert rescored.returncode == 0, rescored.stderr
            canary = {item.request.question for item in load_items()}
            self.asked = ["canary" if read_sections(str(r["messages"][-1]["content"]))
                          .get(SECTION_QUESTION, "").strip() in canary else "run"
                          for r in server.requests]

    def python(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "python"), "-m", "evads_tasks", *args], cwd=REPO,
                              env=self.env, capture_output=True, text=True, timeout=300)

    def run(self, name: str, response: str) -> tuple[dict, str]:
        out = self.root / name
        done = subprocess.run(
            [str(BIN / "lmms_eval"), "--model", "dummy", "--model_args",
             f"response={response}", "--tasks", "evads", "--output_path", str(out),
             "--log_samples"], cwd=REPO, env=self.env, capture_output=True, text=True,
            timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return _results(out), done.stdout

    def samples(self, name: str) -> dict[str, list[dict]]:
        """Per task, its logged samples' E-VAds values."""
        paths = sorted((self.root / name).rglob("*_samples_evads_*.jsonl"))
        return {path.name.split("_samples_")[1].removesuffix(".jsonl"):
                [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
                for path in paths}


def _results(folder: Path) -> dict:
    newest = max(folder.rglob("*_results.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def runs(sample_dir, tmp_path_factory) -> Runs:
    return Runs(sample_dir, tmp_path_factory.mktemp("intervals"))


def cr1_by_hand(values: list[float], videos: list[str]) -> float:
    """The CR1 standard error of a mean, clustered by video, written out."""
    mean = sum(values) / len(values)
    sums: dict[str, float] = {}
    for value, video in zip(values, videos, strict=True):
        sums[video] = sums.get(video, 0.0) + value - mean
    g = len(sums)
    return math.sqrt(g / (g - 1) * sum(s * s for s in sums.values())) / len(values)


def group_stderr_by_hand(tasks: list[list[dict]]) -> float:
    """lmms-eval's group mean is sum_t n_t * mean_t / sum n_t (mean_t over the judged
    samples); item i of task t moves it by n_t / N * (x_i - mean_t) / judged_t. CR1 over
    videos of those moves."""
    total = sum(len(task) for task in tasks)
    moves: dict[str, float] = {}
    for task in tasks:
        judged = [v for v in task if "score" in v]
        mean = sum(v["score"] for v in judged) / len(judged)
        for v in judged:
            moves[v["video_id"]] = moves.get(v["video_id"], 0.0) + len(task) / total * (
                v["score"] - mean) / len(judged)
    g = len(moves)
    return math.sqrt(g / (g - 1) * sum(m * m for m in moves.values()))


def _stderr_cells(table: str) -> dict[tuple[str, str], str]:
    """(row, metric) -> the Stderr cell of lmms-eval's printed Markdown tables."""
    cells = {}
    for block in re.split(r"\n\s*\n", table):
        lines = [line for line in block.splitlines() if line.startswith("|")]
        if not lines or "Stderr" not in lines[0]:
            continue
        header = [cell.strip() for cell in lines[0].strip("|").split("|")]
        for line in lines[2:]:
            row = [cell.strip() for cell in line.strip("|").split("|")]
            cells[(row[0], row[header.index("Metric")])] = row[header.index("Stderr")]
    return cells


def test_lmms_eval_table_shows_numbers_in_the_stderr_column(runs):
    cells = _stderr_cells(runs.table_a)
    evads = {key: cell for key, cell in cells.items() if key[1] in INTERVAL_METRICS}
    rows = {row for row, _ in evads}
    assert len(rows) == 8  # five tasks, two dimensions and overall
    assert len(evads) == 8 * len(INTERVAL_METRICS)
    bad = {key: cell for key, cell in evads.items() if not re.fullmatch(r"\d+\.\d{4}", cell)}
    assert not bad, bad
    assert any(float(cell) > 0 for cell in evads.values())
    ci_rows = [line for line in runs.table_a.splitlines() if "|evads_r5_ci95" in line]
    assert ci_rows and all(re.search(r"\[-?\d\.\d+, -?\d\.\d+\]", line) for line in ci_rows)


def test_results_json_stderr_is_the_clustered_formula_written_out(runs):
    results, samples = runs.a["results"], runs.samples("a")
    for task, logged in samples.items():
        for metric in INTERVAL_METRICS:
            values = [s[metric] for s in logged if "score" in s[metric]]
            expected = cr1_by_hand([v["score"] for v in values], [v["video_id"] for v in values])
            row = results[task]
            assert row[f"{metric}_stderr,none"] == pytest.approx(expected, rel=1e-9), (task,
                                                                                      metric)
            assert row[f"{metric}_stderr_clustered,none"] == row[f"{metric}_stderr,none"]
            mean, se = row[f"{metric},none"], row[f"{metric}_stderr,none"]
            assert row[f"{metric}_ci95,none"] == pytest.approx(
                [mean - 1.959964 * se, mean + 1.959964 * se], abs=1e-4)
    for group, tasks in GROUPS.items():
        row = results[group]
        for metric in INTERVAL_METRICS:
            values = [[s[metric] for s in samples[t]] for t in tasks]
            assert row[f"{metric}_stderr,none"] == pytest.approx(
                group_stderr_by_hand(values), rel=1e-9), (group, metric)
            if metric.endswith("_all"):  # equal tasks, every question counted: pooled CR1
                pooled = [v for task in values for v in task]
                assert row[f"{metric}_stderr,none"] == pytest.approx(cr1_by_hand(
                    [v["score"] for v in pooled], [v["video_id"] for v in pooled]), rel=1e-9)
    # the VALID overall mean is weighted (one CI answer failed), so its error is not pooled
    assert results["evads"]["judge_errors,none"] == 1


def test_the_report_and_a_rescore_give_the_same_intervals(runs):
    rescored = _results(runs.root / "a-again")["results"]
    for name, row in runs.a["results"].items():
        for metric in INTERVAL_METRICS:
            for key in (f"{metric},none", f"{metric}_stderr,none"):
                assert rescored[name][key] == pytest.approx(row[key], rel=1e-9), (name, key)
            assert rescored[name][f"{metric}_ci95,none"] == row[f"{metric}_ci95,none"]
    report = runs.python("report", str(runs.root / "a")).stdout
    assert "intervals are clustered by video" in report
    overall = next(line for line in report.splitlines() if line.startswith("| Overall |"))
    r5 = runs.a["results"]["evads"]
    low, high = r5["evads_r5_ci95,none"]
    assert (f"| {r5['evads_r5,none']:.4f} ± {r5['evads_r5_stderr,none']:.4f} "
            f"[{low:.4f}, {high:.4f}] |") in overall
    assert "judge canary (checked before the run): pass: judge as pinned: 0 of 40" in report


def test_compare_gives_paired_intervals_that_exclude_or_contain_zero(runs):
    a, b = runs.root / "a", runs.root / "b"
    better = runs.python("compare", str(a), str(b))
    assert better.returncode == 0, better.stderr
    paired = paired_comparison(load_scored(a), load_scored(b))
    assert list(paired) == ["BP", "CM", "ML", "CI", "RC", "Perception",
                            "Cognition & Reasoning", "Overall"]
    overall = paired["Overall"]["R5"]
    assert overall.n == 39 and overall.clusters == 8  # the failed CI question is left out
    assert 0 < overall.low <= overall.difference <= overall.high and overall.p_value < 0.05
    assert (f"| Overall | R5 | 39 | 8 | {overall.a_mean:.4f} | {overall.b_mean:.4f} | "
            f"{overall.difference:+.4f} | [{overall.low:+.4f}, {overall.high:+.4f}] |"
            ) in better.stdout
    assert f"B is ahead of A on Overall by {overall.difference:.2f}" in better.stdout
    assert "## Judge agreement" in better.stdout  # the two-judges view is kept

    same = runs.python("compare", str(a), str(a))
    assert same.returncode == 0, same.stderr
    for by_metric in paired_comparison(load_scored(a), load_scored(a)).values():
        for result in by_metric.values():
            assert result.low <= 0 <= result.high and not result.significant
    assert "- **R5**: On BP the difference is within noise" in same.stdout
    assert "ahead of" not in same.stdout


def test_each_run_checked_the_canary_before_judging(runs):
    """What the judge server was asked, in order: the pin's 40 canary items, then per run
    its 40 canary items (bypassing the cache the pin did not fill) before its 40 answers
    (+1: the unparseable reply asked again); the rescore, too, checks the canary first, then
    asks only the failed answer again: its timed call (one attempt, the preflight), then the
    answer itself (the same unparseable reply twice)."""
    phases = [(kind, sum(1 for _ in group)) for kind, group in groupby(runs.asked)]
    assert phases == [("canary", 80), ("run", 41), ("canary", 40), ("run", 41),
                      ("canary", 40), ("run", 3)]
    for run in (runs.a, _results(runs.root / "a-again")):
        assert "canary pass" in run["results"]["evads"]["evads_run,none"]
