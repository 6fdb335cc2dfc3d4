"""A Markdown summary of one lmms-eval E-VAds run: per task, dimension, overall and category.

It reads lmms-eval's ``*_results.json`` and the ``*_samples_evads_*.jsonl`` logs
written with ``--log_samples`` (lmms-eval drops the doc from the log, so the
ids and the judge record come from the metric values ``process_results``
returned). It says which model and which judge produced the numbers. Dimension and
overall rows are computed as lmms-eval computes its group rows (the size-weighted mean of
the task means), so the report and the results JSON give one number for a run.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .annotations import TASK_CODES, TASKS
from .metrics import JUDGE_METRIC, METRIC_LABELS, METRICS, SCORE_KEY, judged_mean
from .scoring import check_level
from .tiny_model import is_tiny_random, looks_tiny_random

REPORT_NAME = "evads_report.md"
RESULTS_GLOB = "*_results.json"  # what lmms-eval's EvaluationTracker names a run's results
_FALLBACK_WARNING = ("Scores come from the offline similarity fallback, not the paper's LLM "
                     "judge: they are not comparable with published E-VAds numbers.")


@dataclass(frozen=True)
class ScoredSample:
    """One question's outcome: its judge score, or None when the judge failed."""

    question_id: str
    task: str
    category: str
    score: float | None
    judge: str
    no_answer: bool = False


def find_run(results_dir: str | Path, since: float | None = None) -> tuple[Path, list[Path]]:
    """The newest ``*_results.json`` under ``results_dir`` and its E-VAds sample logs.

    ``since`` (a Unix time) ignores results written before it: lmms-eval exits 0 when a
    run fails, and an older run's results in the same folder must not stand in for it.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"folder not found: {root}" if not root.exists() else
                                f"{root} is not a folder: pass the run's --output_path folder")
    runs = sorted(root.rglob(RESULTS_GLOB), key=lambda p: (p.stat().st_mtime, p.name))
    if since is not None:
        runs = [p for p in runs if p.stat().st_mtime >= since]
    if not runs:
        when = "" if since is None else f" written since {time.ctime(since)}"
        raise FileNotFoundError(f"no lmms-eval *_results.json under {root}{when}: the run "
                                "failed or wrote elsewhere (see lmms-eval's output)")
    results = runs[-1]
    date_id = results.name.removesuffix("_results.json")
    samples = sorted(results.parent.glob(f"{date_id}_samples_evads_*.jsonl"))
    if not samples:
        raise FileNotFoundError(
            f"no E-VAds sample logs ({date_id}_samples_evads_*.jsonl) beside {results}: "
            f"run lmms-eval with --log_samples")
    return results, samples


def read_samples(paths: list[Path]) -> list[ScoredSample]:
    """The judged outcome of every logged sample; ValueError naming the file and line."""
    samples = []
    for path in paths:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    samples.append(_scored_sample(line, f"{path}, line {number}"))
    return samples


def _scored_sample(line: str, where: str) -> ScoredSample:
    try:
        logged = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON ({exc.msg})") from None
    record = logged.get(JUDGE_METRIC) if isinstance(logged, dict) else None
    if not isinstance(record, dict) or "judge_score" not in record:
        raise ValueError(f"{where}: no E-VAds judge record ('{JUDGE_METRIC}'); was the run "
                         "--predict_only?")
    missing = [key for key in ("question_id", "task") if key not in record]
    if missing:
        raise ValueError(f"{where}: the judge record lacks {', '.join(missing)}")
    if record["task"] not in TASKS:
        raise ValueError(f"{where}: unknown task {record['task']!r} (expected one of "
                         f"{', '.join(TASK_CODES)})")
    score = record["judge_score"]
    if score is not None:
        try:
            score = check_level(score)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: judge_score: {exc}") from None
    return ScoredSample(question_id=str(record["question_id"]), task=record["task"],
                        category=record.get("category") or "unknown", score=score,
                        judge=record.get("judge") or "unknown",
                        no_answer=bool(record.get("no_answer")))


def score_row(samples: list[ScoredSample]) -> dict:
    """Questions, judged, judge errors and R5/R3/R2/G over the judged ones (NaN if none)."""
    judged = [s.score for s in samples if s.score is not None]
    row = {"questions": len(samples), "judged": len(judged),
           "judge_errors": len(samples) - len(judged)}
    for name, metric in METRICS.items():
        row[name] = judged_mean([{SCORE_KEY: metric(x)} for x in judged])
    return row


def weighted_row(task_rows: list[dict]) -> dict:
    """A group row as lmms-eval computes it: counts summed, each metric the mean of the task
    means weighted by task size (questions, judged or not); NaN when any task mean is."""
    sizes = [row["questions"] for row in task_rows]
    row = {key: sum(r[key] for r in task_rows) for key in ("questions", "judged",
                                                           "judge_errors")}
    for name in METRICS:
        row[name] = sum(r[name] * n for r, n in zip(task_rows, sizes, strict=True)) / sum(sizes)
    return row


def summarize(samples: list[ScoredSample]) -> dict[str, dict[str, dict]]:
    """Rows per task, per dimension plus overall (as lmms-eval's groups), per category
    (pooled over its judged questions: categories cut across tasks)."""
    by_task, by_category = defaultdict(list), defaultdict(list)
    for sample in samples:
        by_task[sample.task].append(sample)
        by_category[sample.category].append(sample)
    tasks = {code: score_row(by_task[code]) for code in TASK_CODES if code in by_task}
    by_dimension = defaultdict(list)
    for code, row in tasks.items():
        by_dimension[TASKS[code].dimension].append(row)
    return {
        "tasks": tasks,
        "dimensions": {**{dim: weighted_row(rows) for dim, rows in by_dimension.items()},
                       "Overall": weighted_row(list(tasks.values()))},
        "categories": {cat: score_row(rows) for cat, rows in sorted(by_category.items())},
    }


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _table(title: str, rows: dict[str, dict]) -> list[str]:
    labels = list(METRIC_LABELS.values())
    lines = [f"| {title} | questions | judged | judge errors | {' | '.join(labels)} |",
             "|---|---:|---:|---:|" + "---:|" * len(labels)]
    for name, row in rows.items():
        scores = " | ".join(_fmt(row[metric]) for metric in METRIC_LABELS)
        lines.append(f"| {name} | {row['questions']} | {row['judged']} | "
                     f"{row['judge_errors']} | {scores} |")
    return lines


def model_description(config: dict, run_dir: Path | None = None) -> str:
    """The model as lmms-eval ran it, saying so when it is a stand-in.

    A relative ``pretrained`` path is resolved against the working directory and every
    folder above the run's results (``make eval`` passes one relative to the repository).
    """
    model, model_args = config.get("model", "?"), str(config.get("model_args") or "")
    text = f"`{model}` ({model_args or 'default args'})"
    args = dict(part.split("=", 1) for part in model_args.split(",") if "=" in part)
    if model == "dummy":
        return text + " — the dummy model returns a fixed response: not a real model"
    pretrained = args.get("pretrained")
    if pretrained:
        anchors = [Path.cwd(), *(run_dir.resolve().parents if run_dir else [])]
        candidates = [Path(pretrained).expanduser(), *(a / pretrained for a in anchors)]
        if looks_tiny_random(pretrained) or any(is_tiny_random(c) for c in candidates):
            return text + (" — a tiny RANDOM model built offline: its answers are gibberish "
                           "and its scores mean nothing")
    return text


def limit_text(limit: float) -> str:
    """lmms-eval's ``--limit`` in words: between 0 and 1 a fraction of each task's questions,
    else a count (which it stores as a float: 2.0 reads as 2)."""
    if 0 < limit < 1:
        return f"{limit * 100:g}% of the questions per task"
    return f"{int(limit) if float(limit).is_integer() else limit} questions per task"


def format_report(results: dict, summary: dict, judges: list[str], source: Path,
                  no_answers: int = 0) -> str:
    config = results.get("config") or {}
    lines = ["# E-VAds evaluation report", "",
             f"- results: `{source}`",
             f"- model: {model_description(config, Path(source).parent)}",
             f"- judge: {', '.join(judges)}"]
    if no_answers:
        lines.append(f"- {no_answers} empty answer(s) scored 0 by rule, without a judge call")
    if any("fallback" in judge for judge in judges):
        lines.append(f"- **{_FALLBACK_WARNING}**")
    if config.get("limit") not in (None, -1):
        lines.append(f"- limit: {limit_text(config['limit'])} (a partial run, not the full "
                     "benchmark)")
    lines += ["- R5/R3/R2/G average the judged questions only; judge errors are counted, "
              "not scored. Dimension and overall rows are the size-weighted mean of the task "
              "rows (as lmms-eval's group rows); category rows average their judged "
              "questions.", "",
              "## Per task", "", *_table("task", {
                  f"{code} {TASKS[code].name}": row for code, row in summary["tasks"].items()}),
              "", "## Per dimension and overall", "", *_table("dimension", summary["dimensions"]),
              "", "## Per product category", "", *_table("category", summary["categories"]), ""]
    return "\n".join(lines)


def write_report(results_dir: str | Path, out: str | Path | None = None,
                 since: float | None = None) -> Path:
    """Write the run's Markdown report (default: beside its results JSON) and return its path.

    ``since``: only a run whose results were written at or after this Unix time counts.
    """
    results_path, sample_paths = find_run(results_dir, since)
    samples = read_samples(sample_paths)
    if not samples:
        raise ValueError(f"the sample logs beside {results_path} are empty")
    judges = sorted({s.judge for s in samples})
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{results_path}: not JSON ({exc.msg})") from None
    if not isinstance(results, dict):
        raise ValueError(f"{results_path}: expected a JSON object")
    report = format_report(results, summarize(samples), judges, results_path,
                           sum(s.no_answer for s in samples))
    path = Path(out) if out else results_path.parent / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report, encoding="utf-8")
    return path
