"""E-VAds metrics as lmms-eval sees them: per-sample values and their aggregations (pure).

Every judged sample yields R5, R3, R2 and G from one judge score
(:mod:`evads_tasks.core.scoring`). A sample whose judge failed carries no score: it
is counted in ``judge_errors`` and left out of the means, never scored as 0.
Under the official protocol a score may be any number the authors' parse rule reads
(``levels_only=False``), and R5/R3/R2/G follow their arithmetic. ``evads_run`` says how the
run was made (protocol, the official script's sha256, the judge and its call parameters):
each logged sample carries it and the results JSON reports it once per task and group.

Beside each of those VALID means (over the judged answers: the authors' way) a task reports
the ALL mean (``evads_r5_all``, ...: a failed judgement counts 0, as other toolkits report
it), and ``judge_usage``: the judge's calls, tokens, cost and served model(s)
(:mod:`evads_tasks.core.judge.accounting`), and ``verdict_line_answers``: how many model
answers carry a judge-format ``Answer: <level>`` line (under the official protocol the
authors' parse may read such a line as the judge's verdict: a prompt injection).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from evads_tasks.core.judge.accounting import Price, judge_price, merge_totals, priced, usage_totals
from evads_tasks.core.judge.api import JudgeConfigError
from evads_tasks.core.scoring import mg_score, r2, r3, r5
from evads_tasks.core.statistics import Interval

SCORE_KEY = "score"  # lmms-eval's `score_key`: the number its CLT stderr reads from a dict
METRICS: dict[str, Callable[..., float]] = {
    "evads_r5": r5, "evads_r3": r3, "evads_r2": r2, "evads_g": mg_score,
}
METRIC_LABELS: dict[str, str] = {
    "evads_r5": "R5", "evads_r3": "R3", "evads_r2": "R2", "evads_g": "G",
}
JUDGE_METRIC = "judge_errors"
# Questions left out because their video cannot be decoded (EVADS_BAD_VIDEOS=skip): never
# scored, in no mean; each sample carries its task's count, the task reports it once.
EXCLUDED_METRIC = "excluded_questions"
EXCLUDED_KEY = "excluded_in_task"
RUN_METRIC = "evads_run"
# ALL means: the metric's value with a failed judgement counted 0 (VALID leaves it out).
ALL_SUFFIX = "_all"
ALL_METRICS: dict[str, str] = {name + ALL_SUFFIX: name for name in METRICS}
FAILED_KEY = "judge_failed"
USAGE_METRIC = "judge_usage"
# The means that get a standard error and a 95% interval clustered by video (the VIDEO_KEY of
# each value: the task YAML's cluster_key), beside each mean in the results JSON.
INTERVAL_METRICS = (*METRICS, *ALL_METRICS)
VIDEO_KEY = "video_id"
STDERR_SUFFIXES = ("_stderr", "_stderr_clustered")
CI_SUFFIX = "_ci95"
# Model answers holding a judge-format line (core.judge.parsing.has_verdict_line); the judge
# record carries the flag, this metric counts them per task.
VERDICT_LINE_METRIC = "verdict_line_answers"
VERDICT_LINE_KEY = "verdict_line"


def sample_metrics(score: float | None, judge_record: Mapping, ids: Mapping,
                   excluded_in_task: int = 0, *, run: Mapping | None = None,
                   levels_only: bool = True, usage: Mapping | None = None) -> dict[str, dict]:
    """The values one sample contributes to every metric of a task.

    ``ids`` (question, video, task, category) go into every value so the samples
    log alone supports breakdowns; ``judge_record`` (raw reply, judge name, error)
    is the value of ``judge_errors``, so each logged sample shows it once;
    ``excluded_in_task`` is how many of the task's questions were left out; ``run`` (how
    the run was made) is the value of ``evads_run``; ``levels_only=False`` accepts any
    finite score (the official protocol's parse rule); ``usage`` (the verdict's tokens and
    served model) is the value of ``judge_usage``. The ALL metrics carry a failed
    judgement as 0 with ``judge_failed: true``.
    """
    values = {}
    for name, metric in METRICS.items():
        value = dict(ids)
        if score is not None:
            value[SCORE_KEY] = metric(score, strict=levels_only)
        values[name] = value
        values[name + ALL_SUFFIX] = {**ids, SCORE_KEY: value.get(SCORE_KEY, 0.0),
                                     FAILED_KEY: score is None}
    if usage is not None:
        values[USAGE_METRIC] = {**ids, **usage}
    values[JUDGE_METRIC] = {**ids, **judge_record}
    values[VERDICT_LINE_METRIC] = {**ids,
                                   VERDICT_LINE_KEY: bool(judge_record.get(VERDICT_LINE_KEY))}
    values[EXCLUDED_METRIC] = {**ids, EXCLUDED_KEY: excluded_in_task}
    if run is not None:
        values[RUN_METRIC] = dict(run)
    return values


def call_text(settings: Mapping) -> str:
    """A judge's call in words: body parameters (and a budget clipped to the server's
    context, ``core/chat/server_fit.py``), timeout, tries (empty for a judge that makes no
    call)."""
    parts = [", ".join(f"{k}={v}" for k, v in (settings.get("call_params") or {}).items())]
    fit = settings.get("server_fit") or {}
    if fit.get("clipped_calls"):
        parts.append(f"max_tokens clipped to fit the server's {fit['context_window']}-token "
                     "context")
    if settings.get("timeout_s"):
        parts.append(f"timeout {settings['timeout_s']:g} s")
    if settings.get("max_attempts"):
        delay = settings.get("retry_delay_s")
        parts.append(f"up to {settings['max_attempts']} tries, "
                     + (f"{delay:g} s apart" if delay is not None else "backoff between"))
    return "; ".join(part for part in parts if part)


def run_text(run: Mapping) -> str:
    """One ``evads_run`` value as the results JSON (and lmms-eval's table) shows it:
    protocol; official script sha256; judge; its call; the judge canary's status."""
    judge = run.get("judge") or {}
    sha = run.get("official_script_sha256")
    canary = run.get("canary") or {}
    parts = [f"protocol {run.get('protocol', '?')}",
             f"script sha256 {sha}" if sha else "",
             f"judge {judge.get('judge', '?')}", call_text(judge),
             f"canary {canary['status']}" if canary.get("status") else ""]
    return "; ".join(part for part in parts if part)


def _one_setting(values: Sequence[str]) -> str | None:
    distinct = list(dict.fromkeys(v for v in values if v))
    return " || ".join(distinct) if distinct else None


def run_settings(items: Sequence[Mapping]) -> str | None:
    """Aggregation of ``evads_run``: how the run was made, in one line (the same for every
    sample; ``||`` between the variants when they are not). Each logged sample keeps the
    full settings as a dict."""
    return _one_setting([run_text(item) for item in items])


def same_over_tasks(metrics: Sequence[Any], sizes: Sequence[int],
                    weight_by_size: bool = False) -> str | None:
    """Group aggregation of ``evads_run`` (lmms-eval's group signature): the tasks' line."""
    return _one_setting([m for m in metrics if isinstance(m, str)])


def judged_scores(items: Iterable[Mapping]) -> list[float]:
    """The metric values of the samples the judge scored."""
    return [float(item[SCORE_KEY]) for item in items if item.get(SCORE_KEY) is not None]


def judged_mean(items: Sequence[Mapping]) -> float:
    """Mean over judged samples only; NaN when none was judged (never 0)."""
    scores = judged_scores(items)
    return sum(scores) / len(scores) if scores else math.nan


def all_mean(items: Sequence[Mapping]) -> float:
    """The ALL mean: over every sample, a failed judgement (no score) counted 0; NaN when
    there is no sample."""
    return sum(judged_scores(items)) / len(items) if items else math.nan


def _price() -> Price | None:
    try:
        return judge_price()
    except JudgeConfigError:  # refused before the run started (tasks/utils.py)
        return None


def judge_usage_totals(items: Sequence[Mapping]) -> dict:
    """Aggregation of ``judge_usage``: calls, tokens, cost ($EVADS_JUDGE_PRICE) and the
    served model(s) of the task's verdicts."""
    return priced(usage_totals(items), _price())


def usage_over_tasks(metrics: Sequence[Mapping], sizes: Sequence[int],
                     weight_by_size: bool = False) -> dict:
    """Group aggregation of ``judge_usage`` (lmms-eval's group signature): the tasks' sum."""
    return priced(merge_totals(list(metrics)), _price())


def count_judge_errors(items: Sequence[Mapping]) -> int:
    """How many samples the judge failed on (their scores are missing, not zero)."""
    return sum(1 for item in items if item.get("error") is not None)


def count_verdict_lines(items: Sequence[Mapping]) -> int:
    """How many of the task's model answers carry a judge-format ``Answer: <level>`` line."""
    return sum(1 for item in items if item.get(VERDICT_LINE_KEY))


def count_excluded(items: Sequence[Mapping]) -> int:
    """The task's questions left out for a bad video (every sample carries the count)."""
    return max((int(item.get(EXCLUDED_KEY) or 0) for item in items), default=0)


def task_name(code: str) -> str:
    """The lmms-eval task of a task code (``BP`` -> ``evads_bp``)."""
    return f"evads_{code.lower()}"


def excluded_per_task(results: Mapping) -> dict[str, int]:
    """Per task code, the questions an lmms-eval results JSON says were left out for a bad
    video (only the tasks with some)."""
    from evads_tasks.core.annotations import TASK_CODES

    rows = results.get("results") or {}
    counts = {code: (rows.get(task_name(code)) or {}).get(f"{EXCLUDED_METRIC},none")
              for code in TASK_CODES}
    return {code: int(n) for code, n in counts.items() if isinstance(n, (int, float)) and n}


def interval_cells(metric: str, interval: Interval | None, filter_key: str = "none") -> dict:
    """A mean's clustered standard error and 95% interval as a results JSON keys them:
    lmms-eval's stderr slots ``<metric>_stderr,<filter>`` (the table's Stderr column) and
    ``_stderr_clustered``, and ``<metric>_ci95,<filter>``: [low, high] to 4 decimals (a row
    of lmms-eval's table). ``N/A`` (lmms-eval's word) and no interval with fewer than two
    videos."""
    if interval is None or math.isnan(interval.stderr):
        return {f"{metric}{suffix},{filter_key}": "N/A" for suffix in STDERR_SUFFIXES}
    return {**{f"{metric}{suffix},{filter_key}": interval.stderr for suffix in STDERR_SUFFIXES},
            f"{metric}{CI_SUFFIX},{filter_key}": [round(interval.low, 4),
                                                  round(interval.high, 4)]}


def total_over_tasks(metrics: Sequence[float], sizes: Sequence[int],
                     weight_by_size: bool = False) -> float:
    """Group aggregation for counts (lmms-eval's group signature): the sum over subtasks."""
    return float(sum(metrics))
