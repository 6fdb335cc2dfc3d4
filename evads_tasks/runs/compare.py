"""Two scored runs side by side: means, the paired model comparison, per-question agreement.

A user asks whether model B beats model A (two models' runs), checks that a suite run and
the authors' script agree (same model outputs judged twice, or two protocols), or measures
how far two judges are apart. Pure functions over
:class:`~evads_tasks.runs.scored_runs.ScoredSample` lists; reading the runs and writing the
Markdown happen at the edges (``python -m evads_tasks compare A B``). Questions are matched
by question id; a question judged in only one run, or in neither, counts apart.

:func:`paired_comparison` is the one paired comparison of two runs (also the modality audit's
and the RL before/after's): per task, dimension and overall, B - A on the questions both
runs judged, with a paired bootstrap 95% interval that resamples videos, a sign-flip p-value
over videos and the relative gain (:func:`evads_tasks.core.statistics.paired_difference`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from evads_tasks.core.agreement import judge_agreement
from evads_tasks.core.annotations import TASK_CODES, TASKS
from evads_tasks.core.statistics import (
    BOOTSTRAP_ITERATIONS,
    SEED,
    PairedDifference,
    describe_difference,
    paired_difference,
)
from evads_tasks.tasks.metrics import METRIC_LABELS, METRICS

from .report import (
    GROUPS,
    OVERALL,
    VERDICT_LINE_COLUMN,
    fmt,
    fmt_interval,
    missing_lines,
    protocol_lines,
    summarize,
    task_label,
    verdict_line_notes,
)
from .scored_runs import ScoredRun, ScoredSample

Pair = tuple[ScoredSample, ScoredSample]


@dataclass(frozen=True)
class Pairing:
    """The questions of two runs matched by id, and the ids only one run has."""

    pairs: list[Pair]
    only_a: list[str]
    only_b: list[str]


def _by_id(samples: Sequence[ScoredSample], name: str) -> dict[str, ScoredSample]:
    found: dict[str, ScoredSample] = {}
    for sample in samples:
        if sample.question_id in found:
            raise ValueError(f"run {name} has question {sample.question_id} twice")
        found[sample.question_id] = sample
    return found


def pair_samples(a: Sequence[ScoredSample], b: Sequence[ScoredSample]) -> Pairing:
    """Match the questions of run A and run B by question id (A's order)."""
    in_a, in_b = _by_id(a, "A"), _by_id(b, "B")
    return Pairing(pairs=[(in_a[q], in_b[q]) for q in in_a if q in in_b],
                   only_a=[q for q in in_a if q not in in_b],
                   only_b=[q for q in in_b if q not in in_a])


def agreement(pairs: Sequence[Pair]) -> dict:
    """How the per-question scores of two runs agree, over questions judged in both.

    ``exact``: same score; ``within_0_25``: at most one level apart; ``mean_difference``:
    mean of B - A; ``mean_abs_difference``; ``levels``: {A's score: {B's score: count}};
    ``judged_only_a`` / ``judged_only_b`` / ``judged_in_neither``: the other questions;
    ``kappa`` (quadratic-weighted), ``spearman``, ``shift_low``/``shift_high`` (the bootstrap
    95% interval of the mean difference): :mod:`evads_tasks.core.agreement`.
    """
    xs, ys = judged_in_both(pairs)
    both = list(zip(xs, ys, strict=True))
    n = len(both)
    levels: dict[float, Counter] = defaultdict(Counter)
    for x, y in both:
        levels[x][y] += 1
    share = (lambda k: k / n) if n else (lambda k: math.nan)
    return {
        "questions": len(pairs), "both_judged": n,
        "judged_only_a": sum(x.score is not None and y.score is None for x, y in pairs),
        "judged_only_b": sum(x.score is None and y.score is not None for x, y in pairs),
        "judged_in_neither": sum(x.score is None and y.score is None for x, y in pairs),
        "exact": share(sum(x == y for x, y in both)),
        "within_0_25": share(sum(abs(x - y) <= 0.25 + 1e-9 for x, y in both)),
        "mean_difference": share(sum(y - x for x, y in both)),
        "mean_abs_difference": share(sum(abs(y - x) for x, y in both)),
        "levels": {x: dict(sorted(row.items())) for x, row in sorted(levels.items())},
        **{key: value for key, value in judge_agreement(xs, ys).items()
           if key in ("kappa", "spearman", "shift_low", "shift_high")},
    }


def judged_in_both(pairs: Sequence[Pair]) -> tuple[list[float], list[float]]:
    """A's and B's scores of the questions judged in both runs, in the pairs' order."""
    both = [(x.score, y.score) for x, y in pairs if x.score is not None and y.score is not None]
    return [x for x, _ in both], [y for _, y in both]


def judged_pairs(comparison: dict) -> tuple[list[float], list[float]]:
    """A's and B's scores of the questions judged in both runs (the confusion matrix's)."""
    return judged_in_both(comparison["pairing"].pairs)


def agreement_by_task(pairs: Sequence[Pair]) -> dict[str, dict]:
    """:func:`agreement` per task (A's task label), in the task order."""
    by_task: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_task[pair[0].task].append(pair)
    return {code: agreement(by_task[code]) for code in TASK_CODES if code in by_task}


def paired_comparison(run_a: ScoredRun, run_b: ScoredRun, *,
                      iterations: int = BOOTSTRAP_ITERATIONS,
                      seed: int = SEED) -> dict[str, dict[str, PairedDifference]]:
    """B minus A on the questions both runs judged: per row (each task code, each dimension,
    then ``Overall``) and per metric label (``R5``, ``R3``, ``R2``, ``G``), a
    :class:`~evads_tasks.core.statistics.PairedDifference` (means, difference, paired
    bootstrap 95% interval resampling videos, sign-flip p-value over videos, relative gain).

    Rows with no question judged in both runs are left out, and so is a dimension or the
    overall row when one of its tasks is (never a difference over part of its tasks).
    Dimension and overall rows pool their questions (a paired difference needs no task
    weights: both runs answer the same questions)."""
    pairs = [(x, y) for x, y in pair_samples(run_a.samples, run_b.samples).pairs
             if x.score is not None and y.score is not None]
    rows: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        task = pair[0].task
        for row in (task, TASKS[task].dimension, OVERALL):
            rows[row].append(pair)
    order = [*TASK_CODES, *GROUPS]
    present = {code for code in TASK_CODES if rows.get(code)}
    return {row: {label: _paired(rows[row], metric, iterations, seed)
                  for metric, label in METRIC_LABELS.items()}
            for row in order if rows.get(row) and set(GROUPS.get(row, (row,))) <= present}


def _paired(pairs: Sequence[Pair], metric: str, iterations: int,
            seed: int) -> PairedDifference:
    score = METRICS[metric]
    a = {x.question_id: score(x.score, strict=False) for x, _ in pairs}
    b = {y.question_id: score(y.score, strict=False) for _, y in pairs}
    videos = {x.question_id: x.cluster if x.video_id is not None else y.cluster
              for x, y in pairs}
    return paired_difference(a, b, videos, iterations=iterations, seed=seed)


def compare_runs(a: ScoredRun, b: ScoredRun) -> dict:
    """Everything the comparison reports: both summaries, the pairing, the paired
    comparison and the agreement."""
    pairing = pair_samples(a.samples, b.samples)
    return {"a": summarize(a.samples), "b": summarize(b.samples), "pairing": pairing,
            "paired": paired_comparison(a, b),
            "agreement": agreement(pairing.pairs),
            "agreement_by_task": agreement_by_task(pairing.pairs)}


# ---- Markdown -----------------------------------------------------------------------------

def _means_table(rows_a: dict[str, dict], rows_b: dict[str, dict], names: dict[str, str]
                 ) -> list[str]:
    header = " | ".join(f"{label} A | {label} B | Δ" for label in METRIC_LABELS.values())
    lines = [f"| row | judged A | judged B | errors A | errors B | {header} | "
             f"{VERDICT_LINE_COLUMN} A | {VERDICT_LINE_COLUMN} B |",
             "|---|" + "---:|" * (6 + 3 * len(METRIC_LABELS))]
    for key, name in names.items():
        row_a, row_b = rows_a.get(key), rows_b.get(key)
        if row_a is None or row_b is None:
            continue
        cells = []
        for metric in METRIC_LABELS:
            x, y = row_a[metric], row_b[metric]
            cells += [fmt_interval(x, row_a["intervals"][metric]),
                      fmt_interval(y, row_b["intervals"][metric]),
                      "n/a" if math.isnan(x) or math.isnan(y) else f"{y - x:+.4f}"]
        lines.append(f"| {name} | {row_a['judged']} | {row_b['judged']} | "
                     f"{row_a['judge_errors']} | {row_b['judge_errors']} | {' | '.join(cells)} | "
                     f"{row_a['verdict_lines']} | {row_b['verdict_lines']} |")
    return lines


def _rows(summary: dict) -> dict[str, dict]:
    return {**summary["tasks"], **summary["dimensions"]}


def _agreement_row(name: str, stats: dict) -> str:
    return (f"| {name} | {stats['questions']} | {stats['both_judged']} | "
            f"{fmt(stats['exact'])} | {fmt(stats['within_0_25'])} | "
            f"{fmt(stats['mean_difference'])} | {fmt(stats['mean_abs_difference'])} | "
            f"{stats['judged_only_a']} | {stats['judged_only_b']} |")


def _judge_agreement_row(name: str, stats: dict) -> str:
    interval = ("n/a" if math.isnan(stats["shift_low"]) else
                f"[{stats['shift_low']:+.4f}, {stats['shift_high']:+.4f}]")
    shift = "n/a" if math.isnan(stats["mean_difference"]) else f"{stats['mean_difference']:+.4f}"
    return (f"| {name} | {stats['both_judged']} | {fmt(stats['exact'])} | "
            f"{fmt(stats['kappa'])} | {fmt(stats['spearman'])} | {shift} | {interval} |")


def _level(x: float) -> str:
    return f"{x:g}"


def _row_label(row: str) -> str:
    return task_label(row) if row in TASKS else row


def paired_lines(paired: dict[str, dict[str, PairedDifference]]) -> list[str]:
    """The paired comparison in Markdown: one plain sentence per metric, then the table."""
    if not paired:
        return ["No question was judged in both runs: nothing to compare.", ""]
    lines = []
    for label in METRIC_LABELS.values():
        said = [describe_difference(row, by_metric[label]) for row, by_metric in paired.items()]
        text = "; ".join(said)
        lines.append(f"- **{label}**: {text[0].upper()}{text[1:]}.")
    lines += ["", "| row | metric | questions | videos | A | B | B - A | 95% interval | p | "
              "relative gain (B / A - 1) |", "|---|---|---:|---:|---:|---:|---:|---|---:|---|"]
    for row, by_metric in paired.items():
        for label, d in by_metric.items():
            gain = "n/a (A is 0)" if d.relative is None else (
                f"{d.relative:+.1%} [{d.relative_low:+.1%}, {d.relative_high:+.1%}]")
            lines.append(f"| {_row_label(row)} | {label} | {d.n} | {d.clusters} | "
                         f"{d.a_mean:.4f} | {d.b_mean:.4f} | {d.difference:+.4f} | "
                         f"[{d.low:+.4f}, {d.high:+.4f}] | {d.p_value:.3f} | {gain} |")
    return [*lines, ""]


def format_comparison(a: ScoredRun, b: ScoredRun, comparison: dict) -> str:
    """The Markdown comparison of runs A and B."""
    pairing: Pairing = comparison["pairing"]
    stats = comparison["agreement"]
    lines = ["# E-VAds: two runs compared", ""]
    for name, run in (("A", a), ("B", b)):
        random_model = run.info.get("random_model")
        lines += [f"## Run {name}", "",
                  f"- results: `{run.info.get('source')}` ({run.info.get('kind')})",
                  f"- model: {run.info.get('model')}",
                  "- random model: " + ("unknown" if random_model is None else
                                        "yes" if random_model else "no"),
                  *protocol_lines(run.info),
                  *verdict_line_notes(comparison[name.lower()], run.info.get("protocol")),
                  *missing_lines(comparison[name.lower()]["missing"]), ""]
    lines += ["## Paired comparison: B - A on the questions judged in both runs", "",
              f"- per task, dimension and overall: the difference of the means over the "
              f"questions both runs judged, its 95% interval from a paired bootstrap that "
              f"resamples videos ({BOOTSTRAP_ITERATIONS:,} resamples, seed {SEED}), p from a "
              "sign-flip permutation test over videos, and the relative gain; \"within "
              "noise\" when the interval contains 0", "",
              *paired_lines(comparison["paired"]),
              "## Means (over judged answers, as the authors compute them)", "",
              "- each run's own means, as mean ± standard error [95% interval], clustered "
              "by video; Δ = B - A of the two means (each over its own judged answers)", "",
              *_means_table(_rows(comparison["a"]), _rows(comparison["b"]),
                            {**{code: task_label(code) for code in TASK_CODES},
                             **{name: name for name in comparison["a"]["dimensions"]}}), "",
              "## Per-question agreement", "",
              f"- questions in both runs: {len(pairing.pairs)}; only in A: "
              f"{len(pairing.only_a)}; only in B: {len(pairing.only_b)}",
              "- exact: same score; within 0.25: at most one level apart; Δ = B - A; over "
              "the questions judged in both runs", "",
              "| task | questions | judged in both | exact | within 0.25 | mean Δ | mean abs Δ | "
              "judged only in A | judged only in B |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [_agreement_row(task_label(code), row)
              for code, row in comparison["agreement_by_task"].items()]
    lines += [_agreement_row("all", stats), "",
              "## Judge agreement", "",
              "- over the questions judged in both runs: exact-level agreement, Cohen's kappa "
              "with quadratic weights, Spearman's rank correlation of the scores, and the "
              "shift of the mean score (R5, B - A) with its paired bootstrap 95% interval "
              "(10,000 resamples of the questions, seed 0: for two judgements of the same "
              "predictions; the paired comparison above resamples videos); n/a where "
              "undefined (no pair, or one run gives every question the same score)", "",
              "| task | pairs | exact | kappa (quadratic) | Spearman | mean shift B - A | "
              "95% interval |", "|---|---:|---:|---:|---:|---:|---|"]
    lines += [_judge_agreement_row(task_label(code), row)
              for code, row in comparison["agreement_by_task"].items()]
    lines += [_judge_agreement_row("all", stats), ""]
    if stats["levels"]:
        seen_b = sorted({y for row in stats["levels"].values() for y in row})
        lines += ["### Scores: A (rows) by B (columns)", "",
                  "| A \\ B | " + " | ".join(_level(y) for y in seen_b) + " |",
                  "|---|" + "---:|" * len(seen_b)]
        lines += [f"| {_level(x)} | " + " | ".join(str(row.get(y, 0)) for y in seen_b) + " |"
                  for x, row in stats["levels"].items()]
        lines.append("")
    return "\n".join(lines)
