"""A Markdown + PNG summary of one E-VAds run: per task, dimension, overall and category.

The run is an lmms-eval run or the authors' script output (:mod:`evads_tasks.runs.scored_runs`).
The report says how the numbers were made: which model (and whether it was a random
stand-in), which protocol (with the official script's sha256), which judge with which call
parameters. Means are taken the authors' way, over the judged answers, with the judge
failures counted beside them. Dimension and overall rows are computed as lmms-eval computes
its group rows (the size-weighted mean of the task means), so the report and the results JSON
give one number for a run; a row is given only when every task it groups is in the run, never
as a mean over part of them. Every mean comes with its standard error and 95% interval
clustered by video (:mod:`evads_tasks.core.statistics`), as the results JSON's. Beside every
mean, the answers holding a judge-format ``Answer: <level>`` line are counted (a possible
prompt injection under the official protocol).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from evads_tasks.core.annotations import PERCEPTION, REASONING, TASK_CODES, TASKS
from evads_tasks.core.judge.accounting import judge_price, usage_section, usage_totals
from evads_tasks.core.judge.api import JudgeConfigError
from evads_tasks.core.judge.canary import DRIFT
from evads_tasks.core.judge.canary import summary as canary_summary
from evads_tasks.core.official_script import CHECKED_SHA256
from evads_tasks.core.run_files import RESULTS_GLOB
from evads_tasks.core.statistics import Interval, Stratum, clustered_mean, weighted_mean_of_means
from evads_tasks.core.write_failure import writing
from evads_tasks.tasks.metrics import ALL_METRICS, ALL_SUFFIX, METRIC_LABELS, METRICS, call_text

from .scored_runs import (
    ScoredRun,
    ScoredSample,
    load_official_results,
    load_run,
    model_description,
)

__all__ = ["RESULTS_GLOB", "ScoredSample", "format_report", "model_description", "summarize",
           "write_official_report", "write_report"]

REPORT_NAME = "evads_report.md"
CHART_NAME = "evads_report.png"
_FALLBACK_WARNING = ("Scores come from the offline similarity fallback, not the paper's LLM "
                     "judge: they are not comparable with published E-VAds numbers.")
_EVADS_PROTOCOL_NOTE = ("the evads protocol: our own prompt and judge wording, not the "
                        "authors' (EVADS_PROTOCOL=official reproduces their script)")


def metric_values(samples: Sequence[ScoredSample]) -> dict[str, Stratum]:
    """Per metric (VALID and ALL), the values a mean averages, each question's cluster (its
    video) and the weight lmms-eval gives the set in a group (its questions, judged or not).

    VALID: the judged questions' values; ALL: every question's, a failed judgement counted 0
    (``metrics.all_mean``, as the results JSON's). Scores were checked when read (levels, or
    any number under the official protocol), so the authors' arithmetic applies to all."""
    judged = [s for s in samples if s.score is not None]
    strata = {}
    for name, metric in METRICS.items():
        values = [metric(s.score, strict=False) for s in judged]
        strata[name] = Stratum(values, [s.cluster for s in judged], len(samples))
        strata[name + ALL_SUFFIX] = Stratum(
            [metric(s.score, strict=False) if s.score is not None else 0.0 for s in samples],
            [s.cluster for s in samples], len(samples))
    return strata


def _counts(samples: Sequence[ScoredSample]) -> dict:
    judged = sum(s.score is not None for s in samples)
    return {"questions": len(samples), "judged": judged, "judge_errors": len(samples) - judged,
            "verdict_lines": sum(s.verdict_line for s in samples)}


def score_row(samples: list[ScoredSample]) -> dict:
    """Questions, judged, judge errors, R5/R3/R2/G over the judged ones and over all (NaN
    if none), and ``intervals``: each mean's 95% interval clustered by video (None without a
    value)."""
    row, intervals = _counts(samples), {}
    for name, stratum in metric_values(samples).items():
        interval = clustered_mean(stratum.values, stratum.clusters) if stratum.values else None
        row[name] = interval.mean if interval else math.nan
        intervals[name] = interval
    return {**row, "intervals": intervals}


def weighted_row(task_samples: list[list[ScoredSample]]) -> dict:
    """A group row as lmms-eval computes it: counts summed, each metric the mean of the task
    means weighted by task size (questions, judged or not), NaN when any task mean is; its
    interval clusters a video's questions across the tasks (``weighted_mean_of_means``)."""
    row = _counts([s for samples in task_samples for s in samples])
    per_task = [metric_values(samples) for samples in task_samples]
    intervals = {name: weighted_mean_of_means([strata[name] for strata in per_task])
                 for name in (*METRICS, *ALL_METRICS)}
    return {**row, **{name: interval.mean for name, interval in intervals.items()},
            "intervals": {name: None if math.isnan(interval.mean) else interval
                          for name, interval in intervals.items()}}


OVERALL = "Overall"  # the row over all five tasks, in every table of runs
GROUPS: dict[str, tuple[str, ...]] = {PERCEPTION: tuple(c for c in TASK_CODES
                                                     if TASKS[c].dimension == PERCEPTION),
                                       REASONING: tuple(c for c in TASK_CODES
                                                    if TASKS[c].dimension == REASONING),
                                       OVERALL: TASK_CODES}


def summarize(samples: list[ScoredSample]) -> dict[str, dict[str, dict]]:
    """Rows per task, per dimension plus overall (as lmms-eval's groups; only those whose
    every task is in the run, ``missing`` names the others' absent tasks), per category
    (pooled over its judged questions: categories cut across tasks)."""
    by_task, by_category = defaultdict(list), defaultdict(list)
    for sample in samples:
        by_task[sample.task].append(sample)
        by_category[sample.category].append(sample)
    tasks = {code: score_row(by_task[code]) for code in TASK_CODES if code in by_task}
    missing = {group: [code for code in codes if code not in tasks]
               for group, codes in GROUPS.items()}
    return {
        "tasks": tasks,
        "dimensions": {group: weighted_row([by_task[code] for code in codes])
                       for group, codes in GROUPS.items() if not missing[group]},
        "missing": {group: codes for group, codes in missing.items() if codes},
        "categories": {cat: score_row(rows) for cat, rows in sorted(by_category.items())},
    }


def task_label(code: str) -> str:
    return f"{code} {TASKS[code].name}"


def fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def fmt_interval(mean: float, interval: Interval | None) -> str:
    """``mean ± standard error [95% interval]``; the mean alone where there is no interval
    (fewer than two videos)."""
    if interval is None or math.isnan(interval.stderr):
        return fmt(mean)
    return (f"{mean:.4f} ± {interval.stderr:.4f} "
            f"[{interval.low:.4f}, {interval.high:.4f}]")


INTERVAL_NOTE = ("Each mean is shown as mean ± standard error [95% interval]; intervals are "
                 "clustered by video (a video's questions are correlated, so the standard error "
                 "is the cluster-robust CR1 one over videos, and a group's clusters a video's "
                 "questions across its tasks); the interval is mean ± 1.96 standard errors. A "
                 "row with fewer than two videos has no interval.")


def _table(title: str, rows: dict[str, dict]) -> list[str]:
    """VALID means (R5 ... G), then ALL means (R5 ALL ... G ALL), each with its interval."""
    labels = [*METRIC_LABELS.values(), *(f"{label} ALL" for label in METRIC_LABELS.values())]
    lines = [f"| {title} | questions | judged | judge errors | {' | '.join(labels)} | "
             f"{VERDICT_LINE_COLUMN} |",
             "|---|---:|---:|---:|" + "---:|" * (len(labels) + 1)]
    for name, row in rows.items():
        scores = " | ".join(fmt_interval(row[metric], row["intervals"].get(metric))
                            for metric in (*METRIC_LABELS, *ALL_METRICS))
        lines.append(f"| {name} | {row['questions']} | {row['judged']} | "
                     f"{row['judge_errors']} | {scores} | {row['verdict_lines']} |")
    return lines


VERDICT_LINE_COLUMN = "answers with an Answer: line"


def verdict_line_notes(summary: dict, protocol: str | None) -> list[str]:
    """What the verdict-line column means, loud when some answers carry such a line."""
    count = sum(row["verdict_lines"] for row in summary["tasks"].values())
    if not count:
        return [f"- {VERDICT_LINE_COLUMN}: model answers holding a judge-format `Answer: "
                "<level>` line: none in this run"]
    risk = ("the official protocol reads the judge's reply with the authors' rule (the last "
            "`Answer:` line), so a judge that repeats the answer's line gives the score the "
            "answer asked for: these answers' scores may be injected, not judged"
            if "official" in (protocol or "") else
            "the evads protocol's judge prompt and strict parser do not take them as "
            "verdicts, but look at these answers")
    return [f"- **{count} model answer(s) hold a judge-format `Answer: <level>` line** "
            f"(column \"{VERDICT_LINE_COLUMN}\"): {risk}"]


def limit_text(limit: float) -> str:
    """lmms-eval's ``--limit`` in words: between 0 and 1 a fraction of each task's questions,
    else a count (which it stores as a float: 2.0 reads as 2)."""
    if 0 < limit < 1:
        return f"{limit * 100:g}% of the questions per task"
    return f"{int(limit) if float(limit).is_integer() else limit} questions per task"


def protocol_lines(info: dict) -> list[str]:
    """How the judged text was asked and read: protocol, script, judge and its call."""
    protocol = info.get("protocol") or "evads"
    if protocol == "official":
        sha = info.get("official_script_sha256")
        script = ("" if not sha else f"; script sha256 `{sha}` ("
                  + ("the version evads was checked against" if sha == CHECKED_SHA256 else
                     "NOT the version evads was checked against") + ")")
        text = f"- protocol: official (the authors' evaluation script){script}"
    else:
        text = f"- protocol: {protocol} — {_EVADS_PROTOCOL_NOTE}"
    lines = [text, f"- judge: {', '.join(info.get('judges') or ['unknown'])}"]
    for settings in info.get("judge_settings") or []:
        if call := call_text(settings):
            lines.append(f"  - {settings.get('judge', 'judge')}: {call}")
    return lines


def format_report(info: dict, summary: dict, no_answers: int = 0,
                  chart: str | None = None) -> str:
    """The Markdown report of a run's ``info`` (see ``ScoredRun``) and ``summary``."""
    random_model = info.get("random_model")
    lines = ["# E-VAds evaluation report", "",
             f"- results: `{info.get('source', '?')}` ({info.get('kind', 'lmms-eval run')})",
             f"- model: {info.get('model', '?')}",
             "- random model: " + ("unknown" if random_model is None else
                                   "yes" if random_model else "no"),
             *protocol_lines(info)]
    if no_answers:
        lines.append(f"- {no_answers} empty answer(s) scored 0 by rule, without a judge call")
    if excluded := info.get("excluded"):
        per_task = ", ".join(f"{code} {n}" for code, n in excluded.items())
        lines.append(f"- **{sum(excluded.values())} question(s) excluded** ({per_task}): their "
                     "video cannot be decoded (EVADS_BAD_VIDEOS=skip); never scored, in no "
                     "mean or question count below")
    if any("fallback" in judge for judge in info.get("judges") or []):
        lines.append(f"- **{_FALLBACK_WARNING}**")
    if info.get("limit") not in (None, -1):
        lines.append(f"- limit: {limit_text(info['limit'])} (a partial run, not the full "
                     "benchmark)")
    lines += _rescore_lines(info.get("rescore"))
    if canary := info.get("canary"):
        text = f"judge canary (checked before the run): {canary_summary(canary)}"
        lines.append(f"- **WARNING: {text}**" if canary.get("status") == DRIFT else f"- {text}")
    lines += verdict_line_notes(summary, info.get("protocol"))
    lines += ["- R5/R3/R2/G (VALID) average the judged questions only (the authors' way); judge "
              "errors are counted beside them, not scored. R5 ALL ... G ALL average every "
              "question, a judge error counted 0. Dimension and overall rows are the "
              "size-weighted mean of the task rows (as lmms-eval's group rows); category rows "
              "average their questions.", f"- {INTERVAL_NOTE}", "",
              "## Per task", "", *_table("task", {
                  task_label(code): row for code, row in summary["tasks"].items()}),
              "", "## Per dimension and overall", "", *_table("dimension", summary["dimensions"]),
              *([""] + missing_lines(summary["missing"]) if summary["missing"] else []),
              "", "## Per product category", "", *_table("category", summary["categories"]), ""]
    if chart:
        lines += [f"![R5/R3/R2/G per task and dimension]({chart})", ""]
    lines += usage_lines(summary.get("usage") or {})
    return "\n".join(lines)


def missing_lines(missing: dict[str, list[str]]) -> list[str]:
    """Why a dimension or the overall row is absent: never a mean over part of its tasks."""
    return [f"- {group}: not given, the run lacks {', '.join(codes)} (a mean over part of its "
            "tasks would not be the benchmark's)" for group, codes in missing.items()]


def usage_rows(samples: list[ScoredSample]) -> dict[str, dict]:
    """Judge usage totals per task label, then ``all``; empty when no sample recorded any."""
    recorded = [s for s in samples if s.usage is not None]
    if not recorded:
        return {}
    rows = {task_label(code): usage_totals([s.usage for s in recorded if s.task == code])
            for code in TASK_CODES if any(s.task == code for s in recorded)}
    return {**rows, "all": usage_totals([s.usage for s in recorded])}


def usage_lines(rows: dict[str, dict]) -> list[str]:
    """The judge usage section, priced by $EVADS_JUDGE_PRICE when it is set and valid."""
    try:
        price = judge_price()
    except JudgeConfigError as error:
        return [*usage_section(rows, None), f"- {error} (not priced)", ""]
    return usage_section(rows, price)


def _rescore_lines(rescore: dict | None) -> list[str]:
    if not rescore:
        return []
    return [f"- **rescore**: the predictions of `{rescore.get('source')}` judged again by "
            f"{rescore.get('judge')} (protocol {rescore.get('protocol')}); **no model was "
            f"loaded**; {rescore.get('calls', 0)} judge call(s) made for its verdicts "
            f"({rescore.get('calls_now', 0)} in its last {rescore.get('wall_s', 0):.1f} s)"]


def draw_chart(summary: dict, path: Path, title: str) -> Path | None:
    """Grouped bars of R5/R3/R2/G per task, dimension and overall; None without matplotlib
    (it comes with the ``density`` extra)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {**{code: row for code, row in summary["tasks"].items()}, **summary["dimensions"]}
    names = list(rows)
    labels = [f"{name}\n{rows[name]['judged']} judged, {rows[name]['judge_errors']} failed"
              for name in names]
    fig, axis = plt.subplots(figsize=(max(7.0, 1.3 * len(labels)), 4.6), constrained_layout=True)
    width = 0.8 / len(METRIC_LABELS)
    for index, (metric, label) in enumerate(METRIC_LABELS.items()):
        values = [0.0 if math.isnan(rows[name][metric]) else rows[name][metric]
                  for name in names]
        axis.bar([i + (index - 1.5) * width for i in range(len(labels))], values, width,
                 label=label, yerr=[_half_width(rows[name]["intervals"].get(metric))
                                    for name in names], capsize=2, error_kw={"lw": 0.8})
    axis.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    top = max([1.0, *(row[m] for row in rows.values() for m in METRIC_LABELS
                      if not math.isnan(row[m]))])  # official scores may pass 1
    axis.set_ylim(0, top)
    axis.set_ylabel("mean over judged answers")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(ncols=4, fontsize=8)
    axis.set_title(f"{title}\nerror bars: 95% intervals clustered by video", fontsize=9,
                   wrap=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _half_width(interval: Interval | None) -> float:
    """The error bar of a mean: half its 95% interval (0 where it has none)."""
    return 0.0 if interval is None or math.isnan(interval.stderr) else \
        (interval.high - interval.low) / 2


def _write(run: ScoredRun, markdown_path: Path) -> Path:
    summary = {**summarize(run.samples), "usage": usage_rows(run.samples)}
    title = f"E-VAds: {run.info.get('kind')}, protocol {run.info.get('protocol')}" + (
        " — RANDOM model" if run.info.get("random_model") else "")
    with writing(markdown_path, "free space or pass another --out"):
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        chart = draw_chart(summary, markdown_path.with_name(CHART_NAME), title)
        markdown_path.write_text(
            format_report(run.info, summary, sum(s.no_answer for s in run.samples),
                          chart.name if chart else None), encoding="utf-8")
    return markdown_path


def write_report(results_dir: str | Path, out: str | Path | None = None,
                 since: float | None = None) -> Path:
    """Write an lmms-eval run's report (default: beside its results JSON, with the PNG)
    and return the Markdown's path. ``since``: only results written at or after this Unix
    time count."""
    run = load_run(results_dir, since)
    return _write(run, Path(out) if out else Path(run.info["source"]).parent / REPORT_NAME)


def write_official_report(results_file: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of the authors' ``final_results.csv``/``.json`` (default: beside it)."""
    run = load_official_results(results_file)
    return _write(run, Path(out) if out else Path(results_file).parent / REPORT_NAME)
