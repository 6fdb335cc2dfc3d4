"""``python -m evads_tasks audit RUN [RUN ...] --out DIR``: does the answer need the video?

The runs are lmms-eval runs of the modality conditions (``evads``, ``evads_textonly``,
``evads_blind``, ``evads_videoonly``, ``evads_oneframe``: :mod:`evads_tasks.tasks.conditions`),
one run per condition or one run holding several, rescores of them, or the authors'
``final_results.csv`` (the full condition). Each sample's condition comes from its task's name.
Per task, dimension, overall and product category the audit gives each condition's mean and,
on the questions judged under both conditions:

- Blind Gap = full - blind: what the video and the speech add to the question alone;
- Visual Gain = full - text only: what the video adds to the protocol's text;
- shortcut share: the share of questions whose text-only score reaches the full score;
- Text Gain = full - video only and Temporal Gain = full - one frame, when those ran,

each with a 95% bootstrap interval that resamples videos (``core.statistics``: the five
questions of a video are not independent). Scores are the judge's (R5). Written to ``--out``:
``audit_report.md`` with ``audit_report.png`` (conditions x tasks), ``audit_questions.csv``
(per question, the score under each condition) and ``audit.json``; ``--export-filter FILE``
also writes the ids of the questions answerable without the video
(:mod:`evads_tasks.core.without_video`), for the trainers' ``--exclude``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evads_tasks.core.annotations import PERCEPTION, REASONING, TASK_CODES, TASKS
from evads_tasks.core.statistics import (
    Interval,
    cluster_bootstrap,
    clustered_stderr,
    paired_difference,
)
from evads_tasks.core.without_video import (
    THRESHOLD,
    answerable_without_video,
    check_threshold,
    write_filter,
)
from evads_tasks.tasks.ablation import BLIND, CONDITIONS, FULL, ONE_FRAME, TEXT_ONLY, VIDEO_ONLY
from evads_tasks.tasks.conditions import group_of

from .report import OVERALL, protocol_lines, task_label
from .scored_runs import ScoredSample, load_conditions, load_official_results

REPORT_NAME = "audit_report.md"
CHART_NAME = "audit_report.png"
QUESTIONS_NAME = "audit_questions.csv"
JSON_NAME = "audit.json"
# The differences the audit reports: full minus each other condition, and what each means.
GAPS: dict[str, tuple[str, str]] = {
    BLIND.name: ("Blind Gap", "full - blind: what the video and the speech add to the question"),
    TEXT_ONLY.name: ("Visual Gain", "full - text only: what the video adds to the text"),
    VIDEO_ONLY.name: ("Text Gain", "full - video only: what the ASR text adds to the video"),
    ONE_FRAME.name: ("Temporal Gain", "full - one frame: what the rest of the video adds to "
                                      "its middle frame"),
}
SHORTCUT = "shortcut share"


@dataclass(frozen=True)
class ConditionRun:
    """One condition's scored questions (by id) and how its run was made."""

    condition: str
    samples: dict[str, ScoredSample]
    info: dict


@dataclass(frozen=True)
class Question:
    """What a question is, whichever run scored it."""

    question_id: str
    video_id: str
    task: str
    category: str


# ---- reading the runs -------------------------------------------------------------------

def load_condition_runs(sources: Sequence[str | Path]) -> dict[str, ConditionRun]:
    """Each condition's run, in the conditions' order; ValueError when a condition is in two
    of the runs, a question twice in one, or a sample lacks its video id."""
    found: dict[str, ConditionRun] = {}
    for source in sources:
        path = Path(source)
        run = (load_official_results(path) if path.is_file()
               and path.suffix.lower() in (".csv", ".json") else load_conditions(path))
        for name in run.info["conditions"]:
            if name in found:
                raise ValueError(f"condition {name} is in {found[name].info['source']} and in "
                                 f"{run.info['source']}: give one run per condition")
            found[name] = ConditionRun(name, _by_id(run, name), run.info)
    return {name: found[name] for name in CONDITIONS if name in found}


def _by_id(run, name: str) -> dict[str, ScoredSample]:
    samples: dict[str, ScoredSample] = {}
    for sample in run.samples:
        if sample.condition != name:
            continue
        if sample.question_id in samples:
            raise ValueError(f"{run.info['source']}: question {sample.question_id} is there "
                             f"twice under the {name} condition")
        if not sample.video_id:
            raise ValueError(f"{run.info['source']}: question {sample.question_id} has no "
                             "video id (the intervals resample videos)")
        samples[sample.question_id] = sample
    return samples


def questions(runs: Mapping[str, ConditionRun]) -> dict[str, Question]:
    """Every question any run scored, as the first run (in condition order) has it;
    ValueError when two runs disagree on its video or task (different annotations)."""
    table: dict[str, Question] = {}
    for run in runs.values():
        for qid, s in run.samples.items():
            seen = table.setdefault(qid, Question(qid, s.video_id, s.task, s.category))
            if (seen.video_id, seen.task) != (s.video_id, s.task):
                raise ValueError(f"question {qid} is {seen.task} of video {seen.video_id} in "
                                 f"one run but {s.task} of video {s.video_id} in "
                                 f"{run.info['source']}: were the runs made on one dataset?")
    return table


# ---- the statistics (pure) ----------------------------------------------------------------

def _interval(values: Sequence[float], clusters: Sequence[str]) -> Interval:
    """The mean of ``values`` with its clustered standard error and a cluster-bootstrap 95%
    interval (NaN bounds from one video: resampling it gives no interval)."""
    low, high = _bounds(cluster_bootstrap(values, clusters), clusters)
    return Interval(sum(values) / len(values), clustered_stderr(values, clusters), low, high,
                    len(values), len(set(clusters)))


def _bounds(interval: tuple[float, float], clusters: Sequence[str]) -> tuple[float, float]:
    return interval if len(set(clusters)) > 1 else (math.nan, math.nan)


def scored(run: ConditionRun, ids: Sequence[str]) -> dict[str, float]:
    """The judge scores of ``ids`` that ``run`` scored."""
    return {q: run.samples[q].score for q in ids
            if q in run.samples and run.samples[q].score is not None}


def condition_mean(run: ConditionRun, ids: Sequence[str],
                   table: Mapping[str, Question]) -> Interval | None:
    """The condition's mean over the questions of ``ids`` it scored (None: none)."""
    scores = scored(run, ids)
    if not scores:
        return None
    return _interval(list(scores.values()), [table[q].video_id for q in scores])


def gap(full: ConditionRun, other: ConditionRun, ids: Sequence[str],
        table: Mapping[str, Question]) -> dict | None:
    """full - other on the questions of ``ids`` scored under both, with the paired bootstrap
    interval over videos and the sign-flip p-value (None: no such question)."""
    a, b = scored(other, ids), scored(full, ids)
    both = [q for q in b if q in a]
    if not both:
        return None
    videos = [table[q].video_id for q in both]
    result = paired_difference(a, b, dict(zip(both, videos, strict=True)))
    low, high = _bounds((result.low, result.high), videos)
    return {"interval": Interval(result.difference,
                                 clustered_stderr([b[q] - a[q] for q in both], videos), low,
                                 high, result.n, result.clusters),
            "full_mean": result.b_mean, "other_mean": result.a_mean, "p_value": result.p_value}


def shortcut_share(full: ConditionRun, text: ConditionRun, ids: Sequence[str],
                   table: Mapping[str, Question]) -> Interval | None:
    """The share of the questions scored under both whose text-only score reaches the full
    score (None: no such question)."""
    a, b = scored(text, ids), scored(full, ids)
    both = [q for q in b if q in a]
    if not both:
        return None
    return _interval([float(a[q] >= b[q]) for q in both], [table[q].video_id for q in both])


def row_selections(table: Mapping[str, Question]) -> dict[str, dict[str, list[str]]]:
    """The question ids of each row: per task, per dimension plus overall, per category."""
    ids = sorted(table)
    by = lambda keep: [q for q in ids if keep(table[q])]  # noqa: E731
    tasks = {task_label(c): by(lambda x, c=c: x.task == c) for c in TASK_CODES}
    dimensions = {d: by(lambda x, d=d: TASKS[x.task].dimension == d)
                  for d in (PERCEPTION, REASONING)}
    categories = {c: by(lambda x, c=c: x.category == c)
                  for c in sorted({x.category for x in table.values()})}
    return {"tasks": {k: v for k, v in tasks.items() if v},
            "dimensions": {**{k: v for k, v in dimensions.items() if v}, OVERALL: ids},
            "categories": categories}


def audit_row(runs: Mapping[str, ConditionRun], ids: Sequence[str],
              table: Mapping[str, Question]) -> dict:
    """One row: each condition's mean, the gaps to the full condition, the shortcut share."""
    row = {"questions": len(ids),
           "means": {name: condition_mean(run, ids, table) for name, run in runs.items()},
           "gaps": {}, SHORTCUT: None}
    full = runs.get(FULL.name)
    if full is not None:
        row["gaps"] = {name: gap(full, runs[name], ids, table) for name in GAPS if name in runs}
        if TEXT_ONLY.name in runs:
            row[SHORTCUT] = shortcut_share(full, runs[TEXT_ONLY.name], ids, table)
    return row


def audit(runs: Mapping[str, ConditionRun]) -> dict:
    """Every row of the audit, by section (tasks, dimensions, categories)."""
    table = questions(runs)
    return {section: {label: audit_row(runs, ids, table) for label, ids in rows.items()}
            for section, rows in row_selections(table).items()}


def without_video(run: ConditionRun, threshold: float) -> tuple[list[str], int]:
    """The ids the run shows answerable without the video (the one definition of
    :mod:`evads_tasks.core.without_video`), and how many it left unscored (undecided)."""
    flags = {q: answerable_without_video(s.score, threshold) for q, s in run.samples.items()}
    return sorted(q for q, flag in flags.items() if flag), sum(f is None for f in flags.values())


# ---- writing -----------------------------------------------------------------------------

def _cell(interval: Interval | None) -> str:
    if interval is None:
        return "n/a"
    return f"{interval} (n={interval.n})"


def _gap_cell(result: dict | None) -> str:
    if result is None:
        return "n/a"
    interval = result["interval"]
    bounds = ("" if math.isnan(interval.low) else
              f" [{interval.low:+.4f}, {interval.high:+.4f}]")
    return f"{interval.mean:+.4f}{bounds} (n={interval.n})"


def _label(name: str) -> str:
    return CONDITIONS[name].label


def _means_table(section: Mapping[str, dict], names: Sequence[str]) -> list[str]:
    lines = ["| row | " + " | ".join(_label(n) for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    lines += [f"| {label} | " + " | ".join(_cell(row["means"][n]) for n in names) + " |"
              for label, row in section.items()]
    return lines


def _gaps_table(section: Mapping[str, dict], gaps: Sequence[str], shortcut: bool) -> list[str]:
    heads = [GAPS[n][0] for n in gaps] + ([SHORTCUT] if shortcut else [])
    lines = ["| row | questions | " + " | ".join(heads) + " |",
             "|---|---:|" + "---:|" * len(heads)]
    for label, row in section.items():
        cells = [_gap_cell(row["gaps"].get(n)) for n in gaps]
        if shortcut:
            cells.append(_cell(row[SHORTCUT]))
        lines.append(f"| {label} | {row['questions']} | " + " | ".join(cells) + " |")
    return lines


def _seconds(value: float | None) -> str:
    return "not recorded" if value is None else f"{value:.1f} s"


def _runs_lines(runs: Mapping[str, ConditionRun]) -> list[str]:
    lines = ["| condition | lmms-eval tasks | run | model | questions | judged | evaluation "
             "time |", "|---|---|---|---|---:|---:|---|"]
    for name, run in runs.items():
        judged = sum(s.score is not None for s in run.samples.values())
        shared = [c for c in run.info["conditions"] if c != name]
        time = _seconds(run.info.get("evaluation_s")) + (
            f" (one run with {', '.join(shared)})" if shared else "")
        lines.append(f"| {_label(name)} | `{group_of(CONDITIONS[name])}` | "
                     f"`{run.info['source']}` | {run.info.get('model')} | "
                     f"{len(run.samples)} | {judged} | {time} |")
    return lines


def _warnings(runs: Mapping[str, ConditionRun]) -> list[str]:
    """What makes the figures mean less than they seem, one line each."""
    infos = [run.info for run in runs.values()]
    lines = []
    if any(info.get("random_model") for info in infos):
        lines.append("- **a tiny RANDOM model made (some of) these runs: its answers are "
                     "gibberish and every figure below means nothing**")
    if any("fallback" in judge for info in infos for judge in info.get("judges") or []):
        lines.append("- **scores from the offline similarity fallback, not an LLM judge: not "
                     "comparable with published E-VAds numbers**")
    for key, what in (("model", "models"), ("protocol", "protocols")):
        values = {str(info.get(key)) for info in infos}
        if len(values) > 1:
            lines.append(f"- **the conditions ran with different {what}** ({'; '.join(values)}):"
                         " the gaps then compare those as well as the inputs")
    judges = {tuple(info.get("judges") or []) for info in infos}
    if len(judges) > 1:
        lines.append("- **the conditions were judged by different judges**: the gaps compare "
                     "judges as well as inputs")
    if any(info.get("limit") not in (None, -1) for info in infos):
        lines.append("- a run was limited (lmms-eval --limit): a partial benchmark")
    return lines


def format_audit(runs: Mapping[str, ConditionRun], rows: dict, chart: str | None,
                 exported: dict | None) -> str:
    """The Markdown audit report."""
    names = list(runs)
    gaps = [n for n in GAPS if n in runs] if FULL.name in runs else []
    shortcut = FULL.name in runs and TEXT_ONLY.name in runs
    first = next(iter(runs.values())).info
    lines = ["# E-VAds modality audit: does the answer need the video?", "",
             *_warnings(runs), *protocol_lines(first),
             "- score: the judge's (R5), averaged over the judged answers; a judge failure "
             "is left out, and a gap or share uses only the questions judged under both "
             "conditions", "",
             "## Runs", "", *_runs_lines(runs), ""]
    if not gaps:
        lines += ["- no full-condition run (`evads`): gaps need it; means only", ""]
    lines += ["## What the figures say", ""]
    lines += [f"- {GAPS[n][0]} = {GAPS[n][1]}" for n in gaps]
    if shortcut:
        lines.append(f"- {SHORTCUT}: the share of questions whose text-only score reaches the "
                     "full score (a question failed both ways counts: the video did not help)")
    lines += ["- intervals: 95%, bootstrap resampling videos (2,000 draws, seed 0), none for a "
              "row of one video; n: the questions", "", "## Means per condition", "",
              *_means_table({**rows["tasks"], **rows["dimensions"]}, names), ""]
    if gaps or shortcut:
        lines += ["## Gaps per task, dimension and overall", "",
                  *_gaps_table({**rows["tasks"], **rows["dimensions"]}, gaps, shortcut), "",
                  "## Gaps per product category", "",
                  *_gaps_table(rows["categories"], gaps, shortcut), ""]
    lines += ["## Means per product category", "", *_means_table(rows["categories"], names), ""]
    if chart:
        lines += [f"![mean score per condition and task]({chart})", ""]
    if exported:
        lines += ["## Filter: answerable without the video", "",
                  f"- `{exported['path']}`: {exported['count']} question(s) whose "
                  f"{_label(exported['condition'])} score is >= {exported['threshold']:g} "
                  f"({exported['unscored']} left unscored by the judge: undecided, not listed);"
                  " give it to `make rl EXCLUDE=FILE` (or `--exclude FILE`)", ""]
    return "\n".join(lines)


def draw_chart(runs: Mapping[str, ConditionRun], rows: dict, path: Path,
               title: str) -> Path | None:
    """Grouped bars: per task, dimension and overall, each condition's mean with its 95%
    interval; None without matplotlib (the ``density`` extra)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    section = {**rows["tasks"], **rows["dimensions"]}
    labels = list(section)
    fig, axis = plt.subplots(figsize=(max(7.0, 1.2 * len(labels)), 4.6),
                             constrained_layout=True)
    width = 0.8 / len(runs)
    for index, name in enumerate(runs):
        means = [section[label]["means"][name] for label in labels]
        xs = [i + (index - (len(runs) - 1) / 2) * width for i in range(len(labels))]
        values = [m.mean if m else 0.0 for m in means]
        errors = [[m.mean - m.low if m and m.clusters > 1 else 0.0 for m in means],
                  [m.high - m.mean if m and m.clusters > 1 else 0.0 for m in means]]
        axis.bar(xs, values, width, yerr=errors, capsize=2, label=_label(name))
    axis.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    top = max([1.0, *(m.high for row in section.values()
                      for m in row["means"].values() if m and m.clusters > 1)])
    axis.set_ylim(0, top + 0.15)  # room for the legend above the bars
    axis.set_ylabel("mean judge score (R5), 95% interval")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(ncols=min(5, len(runs)), fontsize=7)
    axis.set_title(title, fontsize=9, wrap=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _interval_json(interval: Interval | None) -> dict | None:
    if interval is None:
        return None
    number = lambda x: None if math.isnan(x) else x  # noqa: E731 - JSON has no NaN
    return {"value": interval.mean, "low": number(interval.low), "high": number(interval.high),
            "stderr": number(interval.stderr), "n": interval.n, "videos": interval.clusters}


def rows_json(rows: dict) -> dict:
    """The rows as plain JSON (the figures a script reads back)."""
    def gap_json(result: dict | None) -> dict | None:
        if result is None:
            return None
        return {**_interval_json(result["interval"]), "full_mean": result["full_mean"],
                "other_mean": result["other_mean"], "p_value": result["p_value"]}

    return {section: {label: {
        "questions": row["questions"],
        "means": {n: _interval_json(m) for n, m in row["means"].items()},
        **{GAPS[n][0]: gap_json(g) for n, g in row["gaps"].items()},
        SHORTCUT: _interval_json(row[SHORTCUT])} for label, row in table.items()}
        for section, table in rows.items()}


def write_questions(runs: Mapping[str, ConditionRun], path: Path) -> Path:
    """Per question, the score under each condition (empty: not run or not judged)."""
    table = questions(runs)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question_id", "video_id", "task", "category", *runs])
        for qid in sorted(table, key=lambda q: (table[q].video_id, table[q].task, q)):
            q = table[qid]
            writer.writerow([qid, q.video_id, q.task, q.category,
                             *("" if (s := run.samples.get(qid)) is None or s.score is None
                               else f"{s.score:g}" for run in runs.values())])
    return path


def export_filter(runs: Mapping[str, ConditionRun], path: Path, threshold: float,
                  condition: str) -> dict:
    """Write the filter file from ``condition``'s run; what it wrote, for the report."""
    if condition not in runs:
        group = group_of(CONDITIONS[condition])
        raise ValueError(f"--export-filter needs a {condition} run ({group}); the runs hold "
                         f"{', '.join(runs)}")
    run = runs[condition]
    ids, unscored = without_video(run, threshold)
    per_task = {code: sum(run.samples[q].task == code for q in ids) for code in TASK_CODES}
    write_filter(path, ids, threshold=threshold, condition=condition, facts={
        "run": run.info["source"], "model": run.info.get("model"),
        "random_model": run.info.get("random_model"), "questions": len(run.samples),
        "unscored": unscored, "per_task": per_task})
    return {"path": str(path), "count": len(ids), "unscored": unscored,
            "threshold": threshold, "condition": condition}


def write_audit(sources: Sequence[str | Path], out: str | Path,
                export: str | Path | None = None, threshold: float = THRESHOLD,
                filter_condition: str = TEXT_ONLY.name,
                progress: Callable[[str], None] = lambda _: None) -> Path:
    """Read the runs, write every output into ``out`` (and the filter file); the report's
    path."""
    threshold = check_threshold(threshold, "--threshold")
    runs = load_condition_runs(sources)
    sizes = ", ".join(f"{name} ({len(run.samples)} questions)" for name, run in runs.items())
    progress(f"conditions: {sizes}")
    rows = audit(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exported = (export_filter(runs, Path(export), threshold, filter_condition)
                if export else None)
    random_model = any(run.info.get("random_model") for run in runs.values())
    title = ("E-VAds modality audit: mean judge score per condition"
             + (" — RANDOM model: means nothing" if random_model else ""))
    chart = draw_chart(runs, rows, out / CHART_NAME, title)
    write_questions(runs, out / QUESTIONS_NAME)
    (out / JSON_NAME).write_text(json.dumps(
        {"conditions": {n: {"source": r.info["source"], "model": r.info.get("model"),
                            "random_model": r.info.get("random_model"),
                            "evaluation_s": r.info.get("evaluation_s"),
                            "questions": len(r.samples)} for n, r in runs.items()},
         "rows": rows_json(rows), "filter": exported}, indent=2, ensure_ascii=False),
        encoding="utf-8")
    report = out / REPORT_NAME
    report.write_text(format_audit(runs, rows, chart.name if chart else None, exported),
                      encoding="utf-8")
    return report
