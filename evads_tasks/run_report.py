"""A Markdown summary of one lmms-eval E-VAds run: per task, dimension, overall and category.

It reads lmms-eval's ``*_results.json`` and the ``*_samples_evads_*.jsonl`` logs
written with ``--log_samples`` (lmms-eval drops the doc from the log, so the
ids and the judge record come from the metric values ``process_results``
returned). It says which model and which judge produced the numbers.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .annotations import TASK_CODES, TASKS
from .metrics import JUDGE_METRIC, METRIC_LABELS, METRICS, SCORE_KEY, judged_mean
from .tiny_model import is_tiny_random

REPORT_NAME = "evads_report.md"
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


def find_run(results_dir: str | Path) -> tuple[Path, list[Path]]:
    """The newest ``*_results.json`` under ``results_dir`` and its E-VAds sample logs."""
    root = Path(results_dir)
    runs = sorted(root.rglob("*_results.json"), key=lambda p: (p.stat().st_mtime, p.name))
    if not runs:
        raise FileNotFoundError(f"no lmms-eval *_results.json under {root}")
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
                if not line.strip():
                    continue
                record = json.loads(line).get(JUDGE_METRIC)
                if not isinstance(record, dict) or "judge_score" not in record:
                    raise ValueError(f"{path}, line {number}: no E-VAds judge record "
                                     f"('{JUDGE_METRIC}'); was the run --predict_only?")
                samples.append(ScoredSample(
                    question_id=str(record["question_id"]), task=record["task"],
                    category=record.get("category") or "unknown", score=record["judge_score"],
                    judge=record.get("judge") or "unknown"))
    return samples


def score_row(samples: list[ScoredSample]) -> dict:
    """Questions, judged, judge errors and R5/R3/R2/G over the judged ones (NaN if none)."""
    judged = [s.score for s in samples if s.score is not None]
    row = {"questions": len(samples), "judged": len(judged),
           "judge_errors": len(samples) - len(judged)}
    for name, metric in METRICS.items():
        row[name] = judged_mean([{SCORE_KEY: metric(x)} for x in judged])
    return row


def summarize(samples: list[ScoredSample]) -> dict[str, dict[str, dict]]:
    """Rows per task, per dimension plus overall, and per product category."""
    by_task, by_dimension, by_category = defaultdict(list), defaultdict(list), defaultdict(list)
    for sample in samples:
        by_task[sample.task].append(sample)
        by_dimension[TASKS[sample.task].dimension].append(sample)
        by_category[sample.category].append(sample)
    return {
        "tasks": {code: score_row(by_task[code]) for code in TASK_CODES if code in by_task},
        "dimensions": {**{dim: score_row(rows) for dim, rows in by_dimension.items()},
                       "Overall": score_row(samples)},
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


def model_description(config: dict) -> str:
    """The model as lmms-eval ran it, saying so when it is a stand-in."""
    model, model_args = config.get("model", "?"), str(config.get("model_args") or "")
    text = f"`{model}` ({model_args or 'default args'})"
    args = dict(part.split("=", 1) for part in model_args.split(",") if "=" in part)
    if model == "dummy":
        return text + " — the dummy model returns a fixed response: not a real model"
    if args.get("pretrained") and is_tiny_random(args["pretrained"]):
        return text + (" — a tiny RANDOM model built offline: its answers are gibberish and "
                       "its scores mean nothing")
    return text


def format_report(results: dict, summary: dict, judges: list[str], source: Path) -> str:
    config = results.get("config") or {}
    lines = ["# E-VAds evaluation report", "",
             f"- results: `{source}`",
             f"- model: {model_description(config)}",
             f"- judge: {', '.join(judges)}"]
    if any("fallback" in judge for judge in judges):
        lines.append(f"- **{_FALLBACK_WARNING}**")
    if config.get("limit") not in (None, -1):
        lines.append(f"- limit: {config['limit']} questions per task (a partial run, not the "
                     "full benchmark)")
    lines += ["- R5/R3/R2/G average the judged questions only; judge errors are counted, "
              "not scored. Dimension and overall rows pool the judged questions.", "",
              "## Per task", "", *_table("task", {
                  f"{code} {TASKS[code].name}": row for code, row in summary["tasks"].items()}),
              "", "## Per dimension and overall", "", *_table("dimension", summary["dimensions"]),
              "", "## Per product category", "", *_table("category", summary["categories"]), ""]
    return "\n".join(lines)


def write_report(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's Markdown report (default: beside its results JSON) and return its path."""
    results_path, sample_paths = find_run(results_dir)
    samples = read_samples(sample_paths)
    if not samples:
        raise ValueError(f"the sample logs beside {results_path} are empty")
    judges = sorted({s.judge for s in samples})
    results = json.loads(results_path.read_text(encoding="utf-8"))
    report = format_report(results, summarize(samples), judges, results_path)
    path = Path(out) if out else results_path.parent / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report, encoding="utf-8")
    return path
