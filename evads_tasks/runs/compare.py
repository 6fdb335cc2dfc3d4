"""Two scored runs side by side: per-task means and per-question score agreement.

A user checks that a suite run and the authors' script agree (same model outputs judged
twice, or two protocols), or measures how far two judges or two models are apart. Pure
functions over :class:`~evads_tasks.runs.scored_runs.ScoredSample` lists; reading the runs and
writing the Markdown happen at the edges (``python -m evads_tasks compare A B``).
Questions are matched by question id; a question judged in only one run, or in neither,
counts apart from the agreement.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from .agreement import judge_agreement
from evads_tasks.core.annotations import TASK_CODES
from evads_tasks.tasks.metrics import METRIC_LABELS
from .report import (
    VERDICT_LINE_COLUMN,
    fmt,
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
    95% interval of the mean difference): :mod:`evads_tasks.runs.agreement`.
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


def compare_runs(a: ScoredRun, b: ScoredRun) -> dict:
    """Everything the comparison reports: both summaries, the pairing and the agreement."""
    pairing = pair_samples(a.samples, b.samples)
    return {"a": summarize(a.samples), "b": summarize(b.samples), "pairing": pairing,
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
            cells += [fmt(x), fmt(y), "n/a" if math.isnan(x) or math.isnan(y) else f"{y - x:+.4f}"]
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
    lines += ["## Means (over judged answers, as the authors compute them)", "",
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
              "(10,000 resamples of the questions, seed 0); n/a where undefined (no pair, or "
              "one run gives every question the same score)", "",
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
