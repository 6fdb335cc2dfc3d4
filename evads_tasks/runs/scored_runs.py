"""Scored runs: each question's judge score, read from an lmms-eval run or the authors' script.

Two sources give the same :class:`ScoredRun` (samples plus how the run was made), so the
report and ``compare`` treat them alike:

- an lmms-eval run: the newest ``*_results.json`` under ``--output_path`` and its
  ``*_samples_evads_*.jsonl`` logs (``--log_samples``; lmms-eval drops the doc from the log,
  so the ids, the judge record and ``evads_run`` come from the metric values
  ``process_results`` returned);
- the authors' script output, ``final_results.csv`` (or ``final_results.json``): one row per
  answered question with ``ques_id``, ``ques_categories``, ``goods_category`` and
  ``score_R5``/``score_R3``/``score_R2`` (empty when their judge failed: kept, not scored),
  and ``video_id``, what intervals cluster by.

A run is read whole or not at all: a results JSON naming a task whose sample log is missing,
empty or cut short (a full disk) is refused (``core.run_files.run_file_problems``), so no report or
comparison averages a subset of its tasks; so is a question id that appears twice.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from evads_tasks.core.annotations import TASK_CODES, TASKS, canonical_category, task_code
from evads_tasks.core.annotations.errors import first_duplicate
from evads_tasks.core.judge.parsing import has_verdict_line
from evads_tasks.core.judge.protocols import EVADS, OFFICIAL
from evads_tasks.core.responses import authors_judged_text
from evads_tasks.core.run_files import RESULTS_GLOB, read_results, run_file_problems
from evads_tasks.core.scoring import r2, r3, r5
from evads_tasks.sample.tiny_model import is_tiny_random, looks_tiny_random
from evads_tasks.tasks.ablation import FULL, condition
from evads_tasks.tasks.conditions import condition_of_task
from evads_tasks.tasks.metrics import (
    JUDGE_METRIC,
    RUN_METRIC,
    USAGE_METRIC,
    VERDICT_LINE_KEY,
    excluded_per_task,
)

RUN_FACTS_KEY = "evads"  # what a rescore adds to the results JSON it writes
RESCORE_KIND = "rescore: logged predictions judged again, no model run"
AUTHORS_OUTPUT = "the authors' evaluation script output"
# The columns of the authors' final_results.csv this reader needs.
AUTHORS_COLUMNS = ("ques_id", "ques_categories", "goods_category", "score_R5")


@dataclass(frozen=True)
class ScoredSample:
    """One question's outcome: its judge score, or None when the judge failed."""

    question_id: str
    task: str
    category: str
    score: float | None
    judge: str
    no_answer: bool = False
    protocol: str = EVADS
    usage: dict | None = None  # the verdict's tokens, calls, served model (judge_usage)
    video_id: str | None = None  # None where the source names no video
    condition: str = FULL.name  # the modality condition its task ran under (tasks.ablation)
    verdict_line: bool = False  # the model's answer holds a judge-format "Answer: <level>"

    @property
    def cluster(self) -> str:
        """What intervals cluster this question by: its video (a video's questions are
        correlated), or the question itself where the source names no video."""
        return self.video_id if self.video_id is not None else f"question {self.question_id}"


@dataclass(frozen=True)
class ScoredRun:
    """A run's samples and how it was made (``info``: source, kind, model, random_model,
    protocol, official_script_sha256, judges, run settings, limit, the judge canary's
    record)."""

    samples: list[ScoredSample]
    info: dict = field(default_factory=dict)


# ---- lmms-eval runs ---------------------------------------------------------------------

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
    if problems := run_file_problems(results):
        raise ValueError(f"the run of {results} is incomplete, so it is not read (no mean "
                         f"over part of its tasks): {'; '.join(problems)}. Rerun it (was its "
                         "disk full?)")
    return results, samples


def logged_samples(path: Path) -> Iterator[tuple[object, str]]:
    """Each sample a JSONL log holds, parsed, with where it is (``FILE, line N``);
    ValueError naming the line that is not JSON."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                where = f"{path}, line {number}"
                try:
                    sample = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{where}: not JSON ({exc.msg})") from None
                yield sample, where


def logged_task(path: Path) -> str:
    """The lmms-eval task whose samples a log holds (``DATE_samples_TASK.jsonl``)."""
    return path.name.split("_samples_", 1)[-1].removesuffix(".jsonl")


def log_condition(path: Path) -> str:
    """The modality condition of a sample log's task (``evads_textonly_bp`` -> textonly);
    ValueError naming the file when its task is not an E-VAds one."""
    try:
        return condition_of_task(logged_task(path))[0].name
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def read_samples(paths: list[Path]) -> tuple[list[ScoredSample], list[dict]]:
    """The judged outcome of every logged sample and the distinct ``evads_run`` settings
    they carry; ValueError naming the file and line."""
    samples, settings = [], []
    for path in paths:
        found, runs = scored_samples(logged_samples(path), log_condition(path))
        samples += found
        settings += [run for run in runs if run not in settings]
    return samples, settings


def scored_samples(logged: Iterable[tuple[object, str]], condition: str = FULL.name
                   ) -> tuple[list[ScoredSample], list[dict]]:
    """:func:`read_samples` of samples already parsed, each with where it is, all run under
    ``condition``."""
    samples, settings, places = [], {}, []
    for sample, where in logged:
        scored, run = _scored_sample(sample, where, condition)
        samples.append(scored)
        places.append((scored.question_id, where))
        if run is not None:
            settings.setdefault(json.dumps(run, sort_keys=True), run)
    refuse_duplicates(places)
    return samples, list(settings.values())


def refuse_duplicates(ids: Iterable[tuple[str, str]]) -> None:
    """ValueError naming both places when a question id of ``(id, where)`` comes twice."""
    if repeated := first_duplicate(ids):
        question_id, first, again = repeated
        raise ValueError(f"question id {question_id!r} appears twice: {first} and {again}; "
                         "every question needs its own id")


def _score(value: object, protocol: str, where: str) -> float | None:
    """A logged score: a level, or under the official protocol any finite number (R5 is the
    score so checked)."""
    if value is None:
        return None
    try:
        return r5(value, strict=protocol != OFFICIAL)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def _scored_sample(logged: object, where: str,
                   condition: str) -> tuple[ScoredSample, dict | None]:
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
    run = logged.get(RUN_METRIC)
    run = run if isinstance(run, dict) else None
    protocol = record.get("protocol") or (run or {}).get("protocol") or EVADS
    score = _score(record["judge_score"], protocol, f"{where}: judge_score")
    verdict_line = record.get(VERDICT_LINE_KEY)
    if verdict_line is None:  # logged before evads recorded it
        verdict_line = has_verdict_line(str(record.get("judged_answer") or ""))
    return ScoredSample(question_id=str(record["question_id"]), task=record["task"],
                        category=record.get("category") or "unknown", score=score,
                        judge=record.get("judge") or "unknown",
                        no_answer=bool(record.get("no_answer")), protocol=protocol,
                        usage=logged.get(USAGE_METRIC) if isinstance(
                            logged.get(USAGE_METRIC), dict) else None,
                        video_id=_video_id(record.get("video_id")), condition=condition,
                        verdict_line=bool(verdict_line)), run


def _video_id(value: object) -> str | None:
    return None if value is None or not str(value).strip() else str(value)


def model_info(config: dict, run_dir: Path | None = None) -> tuple[str, bool]:
    """The model as lmms-eval ran it (saying so when it is a stand-in) and whether it is a
    tiny RANDOM model (lmms-eval's ``dummy`` model is named as fixed replies, not random).

    A relative ``pretrained`` path is resolved against the working directory and every
    folder above the run's results (``make eval`` passes one relative to the repository).
    """
    model, model_args = config.get("model", "?"), str(config.get("model_args") or "")
    text = f"`{model}` ({model_args or 'default args'})"
    args = dict(part.split("=", 1) for part in model_args.split(",") if "=" in part)
    if model == "dummy":
        return text + " — the dummy model returns a fixed response: not a real model", False
    pretrained = args.get("pretrained")
    if pretrained:
        anchors = [Path.cwd(), *(run_dir.resolve().parents if run_dir else [])]
        candidates = [Path(pretrained).expanduser(), *(a / pretrained for a in anchors)]
        if looks_tiny_random(pretrained) or any(is_tiny_random(c) for c in candidates):
            return text + (" — a tiny RANDOM model built offline: its answers are gibberish "
                           "and its scores mean nothing"), True
    return text, False


def model_description(config: dict, run_dir: Path | None = None) -> str:
    """The model as lmms-eval ran it, saying so when it is a stand-in."""
    return model_info(config, run_dir)[0]


def load_run(results_dir: str | Path, since: float | None = None) -> ScoredRun:
    """An lmms-eval run of one condition (the newest results under ``results_dir``, see
    :func:`find_run`); ValueError when it holds the tasks of several conditions (``evads``
    and ``evads_textonly``, ...), which only ``audit`` compares."""
    run = load_conditions(results_dir, since)
    if len(run.info["conditions"]) > 1:
        raise ValueError(
            f"{run.info['source']} holds the tasks of {len(run.info['conditions'])} modality "
            f"conditions ({', '.join(run.info['conditions'])}): a report or comparison covers "
            f"one; compare them with python -m evads_tasks audit {results_dir}, or give each "
            "condition its own --output_path")
    return run


def load_conditions(results_dir: str | Path, since: float | None = None) -> ScoredRun:
    """An lmms-eval run, whatever conditions its tasks ran under (``info["conditions"]``
    lists them, ``info["evaluation_s"]`` is lmms-eval's evaluation time)."""
    results_path, sample_paths = find_run(results_dir, since)
    samples, settings = read_samples(sample_paths)
    if not samples:
        raise ValueError(f"the sample logs beside {results_path} are empty")
    results = read_results(results_path)
    config = results.get("config") or {}
    model, random_model = model_info(config, results_path.parent)
    facts = results.get(RUN_FACTS_KEY) if isinstance(results.get(RUN_FACTS_KEY), dict) else {}
    kind = "lmms-eval run"
    if "rescore" in facts:  # a rescore (evads_tasks.runs.rescore) says what it re-judged
        model, random_model = facts.get("model", model), facts.get("random_model")
        kind = RESCORE_KIND
    protocols = sorted({s.protocol for s in samples})
    scripts = sorted({s.get("official_script_sha256") for s in settings} - {None})
    conditions = list(dict.fromkeys(s.condition for s in samples))
    if conditions != [FULL.name]:
        kind += ", condition " + " + ".join(condition(c).label for c in conditions)
    return ScoredRun(samples, {
        "source": str(results_path), "kind": kind, "model": model, "conditions": conditions,
        "evaluation_s": _seconds(results.get("total_evaluation_time_seconds")),
        "random_model": random_model, "protocol": ", ".join(protocols),
        "official_script_sha256": ", ".join(scripts) or None,
        "judges": sorted({s.judge for s in samples}),
        "judge_settings": [s.get("judge") for s in settings if s.get("judge")],
        "limit": config.get("limit"), "excluded": excluded_per_task(results),
        "rescore": facts.get("rescore"),
        "canary": next((s["canary"] for s in settings if s.get("canary")), None)})


def _seconds(value: object) -> float | None:
    """lmms-eval's ``total_evaluation_time_seconds`` (written as text) as a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ---- the authors' script output -------------------------------------------------------

class AuthorsRow(NamedTuple):
    """A row of the authors' script output, its task code and where it is (for messages:
    ``FILE, line N`` of a CSV, ``FILE, row N`` of a JSON list)."""

    row: dict
    task: str
    where: str


def authors_rows(path: str | Path, columns: Sequence[str], needed_by: str) -> list[AuthorsRow]:
    """The rows of the authors' ``final_results.csv`` / ``.json`` with their task codes.
    ValueError when there are none, when the first lacks one of ``columns`` (what
    ``needed_by`` needs), a row's ``ques_categories`` names no task or a ``ques_id`` comes
    twice."""
    path = Path(path)
    rows = _read_authors_file(path)
    if not rows:
        raise ValueError(f"{path}: no rows")
    missing = [column for column in columns if column not in rows[0]]
    if missing:
        raise ValueError(f"{path}: {needed_by} needs the authors' final_results columns "
                         f"{', '.join(columns)}; missing {', '.join(missing)} (it has "
                         f"{', '.join(rows[0])})")
    json_rows = path.suffix.lower() == ".json"
    table = []
    for number, row in enumerate(rows, 0 if json_rows else 2):
        where = f"{path}, {'row' if json_rows else 'line'} {number}"
        try:
            task = task_code(str(row["ques_categories"]))
        except KeyError as exc:
            raise ValueError(f"{where}: ques_categories: {exc.args[0]}") from None
        table.append(AuthorsRow(row, task, where))
    refuse_duplicates((str(row["ques_id"]), where) for row, _, where in table)
    return table


def _read_authors_file(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc.msg})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{path}: expected a JSON list of rows (final_results.json)")
        return rows
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _authors_score(row: dict, column: str, where: str) -> float | None:
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {column} {value!r} is not a number") from None
    return None if math.isnan(score) else score


def read_official_results(path: str | Path) -> list[ScoredSample]:
    """The samples of the authors' ``final_results.csv`` / ``.json``; an empty score is a
    failed judge (kept, not scored). Their R3/R2 must be what their R5 gives."""
    samples = []
    for row, task, where in authors_rows(path, AUTHORS_COLUMNS, "reading the scores"):
        score = _authors_score(row, "score_R5", where)
        for column, metric in (("score_R3", r3), ("score_R2", r2)):
            theirs = _authors_score(row, column, where) if column in row else None
            if theirs is not None and (score is None or theirs != metric(score, strict=False)):
                raise ValueError(f"{where}: {column} {theirs} is not what score_R5 {score} "
                                 f"gives ({metric.__name__.upper()})")
        prediction = row.get("prediction")
        samples.append(ScoredSample(
            question_id=str(row["ques_id"]), task=task,
            category=canonical_category(str(row.get("goods_category") or "")) or "unknown",
            score=score, judge="the authors' judge (not recorded in their output)",
            protocol=OFFICIAL, video_id=_video_id(row.get("video_id")),
            verdict_line=isinstance(prediction, str) and has_verdict_line(
                authors_judged_text(prediction))))
    return samples


def load_official_results(path: str | Path) -> ScoredRun:
    """The authors' script output as a run."""
    return ScoredRun(read_official_results(path), {
        "source": str(path), "kind": AUTHORS_OUTPUT,
        "model": "as the authors' script ran it (not recorded in its output)",
        "random_model": None, "protocol": OFFICIAL, "official_script_sha256": None,
        "judges": ["the authors' judge (not recorded in their output)"],
        "judge_settings": [], "limit": None, "conditions": [FULL.name], "evaluation_s": None})


def load_scored(source: str | Path, since: float | None = None) -> ScoredRun:
    """A run folder (lmms-eval) or an authors' ``final_results.csv``/``.json`` file."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() in (".csv", ".json"):
        return load_official_results(path)
    return load_run(path, since)
