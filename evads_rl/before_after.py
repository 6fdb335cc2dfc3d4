"""Did training help? A run's base model and its trained models compared on held-out questions.

After training (``python -m evads_rl rl`` with ``data.eval``, or ``python -m evads_rl
evaluate RUN_DIR``), the base model and each ``final/`` are scored through the E-VAds
lmms-eval tasks on the same questions with the same judge (:mod:`evads_rl.benchmark_runs`),
and each trained model is compared with the base question by question: per task, per
dimension and overall, for R5, R3, R2 and G, the absolute gain (trained - base) and the
relative gain (trained / base - 1, how the paper states its +109.2%) with 95% intervals from
a bootstrap over videos and a sign-flip p-value (:func:`paired_comparison`). Written to
``RUN_DIR/evaluation/``: ``report.md``, ``before_after.png``, ``comparison.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from evads_tasks.core.annotations import PERCEPTION, REASONING, TASK_CODES, TASKS, EvadsRecord
from evads_tasks.core.statistics import PairedDifference
from evads_tasks.runs.compare import paired_comparison as compare_runs_paired
from evads_tasks.runs.report import OVERALL as TABLE_OVERALL
from evads_tasks.runs.scored_runs import ScoredRun
from evads_tasks.tasks.metrics import METRIC_LABELS

from .benchmark_runs import (
    EVALUATION_DIR,
    ScoredModel,
    evaluation_settings,
    run_models,
    score_model,
    write_questions,
)
from .config import ConfigError
from .heldout import HeldOut, check_heldout, eval_file, eval_records

REPORT_FILE = "report.md"
CHART_FILE = "before_after.png"
COMPARISON_FILE = "comparison.json"
OVERALL = "overall"
SCOPES = (*TASK_CODES, PERCEPTION, REASONING, OVERALL)
ROW_OF_SCOPE = {OVERALL: TABLE_OVERALL}  # compare's row names, where they differ
HEADLINE = "G"  # the metric the printed table and the chart show (MG-GRPO's own score)
PAPER_GAIN = ("the paper reports +109.2% in commercial-intent reasoning for E-VAds-R1 over its "
              "base model, trained on a few hundred RL samples (its metric and questions are "
              "not published with it): what a real run's relative gains are measured against")
RANDOM_MODELS = ("tiny RANDOM models built offline: they answer gibberish, so these numbers are "
                 "meaningless; they show that the comparison runs, not what training does")

Comparison = dict[str, dict[str, PairedDifference | None]]  # scope -> metric label -> result


def paired_comparison(base: ScoredRun, trained: ScoredRun) -> Comparison:
    """Trained minus base for every scope (task, dimension, overall) and metric (R5 R3 R2 G)
    on the questions both judged, intervals and p-values over videos; None where the scope
    has no such question. The paired comparison of ``python -m evads_tasks compare``
    (:func:`evads_tasks.runs.compare.paired_comparison`), keyed by this report's scopes."""
    rows = compare_runs_paired(base, trained)
    return {scope: {label: rows.get(ROW_OF_SCOPE.get(scope, scope), {}).get(label)
                    for label in METRIC_LABELS.values()}
            for scope in SCOPES}


def _scope_label(scope: str) -> str:
    return f"{scope} {TASKS[scope].name}" if scope in TASKS else scope


def _gain(value: float | None, low: float | None, high: float | None, percent: bool) -> str:
    """``+0.12 [-0.03, +0.27]``; a bound that is not finite is ``+inf`` (the relative gain of
    resamples whose base mean is 0 has no upper bound)."""
    if value is None:
        return "n/a (base 0)"
    scale, unit = (100, "%") if percent else (1, "")

    def shown(number: float) -> str:
        return f"{number * scale:+.3g}{unit}" if math.isfinite(number) else f"+inf{unit}"

    return f"{shown(value)} [{shown(low)}, {shown(high)}]"


def comparison_table(comparison: Comparison, metric: str) -> list[str]:
    """Markdown rows: per scope the base and trained means, the gain with its interval, the
    relative gain with its interval, the p-value and the questions/videos compared."""
    rows = [f"| {metric} | base | trained | gain [95% CI] | relative gain [95% CI] | p | "
            "questions (videos) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for scope in SCOPES:
        found = comparison[scope].get(metric)
        if found is None:
            rows.append(f"| {_scope_label(scope)} | n/a | n/a | n/a | n/a | n/a | 0 |")
            continue
        rows.append(f"| {_scope_label(scope)} | {found.a_mean:.4f} | {found.b_mean:.4f} | "
                    f"{_gain(found.difference, found.low, found.high, False)} | "
                    f"{_gain(found.relative, found.relative_low, found.relative_high, True)} | "
                    f"{found.p_value:.3g} | {found.n} ({found.clusters}) |")
    return rows


def _model_line(scored: ScoredModel) -> str:
    how = ("scored earlier (reused)" if scored.seconds is None
           else f"scored in {scored.seconds:.0f} s")
    judged = sum(s.score is not None for s in scored.run.samples)
    return (f"- **{scored.model.name}**: `{scored.model.path}`; lmms-eval: "
            f"{scored.run.info.get('model')}; {judged} of {len(scored.run.samples)} answers "
            f"judged by {', '.join(scored.run.info.get('judges') or ['?'])}; {how}")


def format_report(scored: Sequence[ScoredModel], comparisons: Mapping[str, Comparison],
                  records: Sequence[EvadsRecord], source: str, heldout: HeldOut,
                  settings: Mapping) -> str:
    """The Markdown report: the held-out warning first when the run was allowed to overlap,
    what was scored how, then per trained model one table per metric."""
    videos = len({r.video_id for r in records})
    lines = [heldout.warning] if heldout.warning else []
    lines += ["# Did training help? E-VAds before and after training", ""]
    if any(s.run.info.get("random_model") for s in scored):
        lines += [f"**{RANDOM_MODELS}.**", ""]
    judges = {tuple(s.run.info.get("judges") or ()) for s in scored}
    if len(judges) > 1:
        lines += ["**The models were judged by different judges: the comparison mixes "
                  "judges.**", ""]
    lines += [f"- questions: {len(records)} of {source} ({videos} videos), the same for "
              f"every model; prompt format `{settings['prompt']}`",
              *(_model_line(s) for s in scored),
              "- gain = trained - base, relative gain = trained / base - 1, on the questions "
              "judged for both; 95% intervals from a bootstrap over videos (the five questions "
              "of a video are correlated; `+inf`: resamples with a base mean of 0); p from a "
              "sign-flip permutation test over videos",
              f"- {PAPER_GAIN}", ""]
    for name, comparison in comparisons.items():
        lines += [f"## base -> {name}", ""]
        for metric in (HEADLINE, *(m for m in METRIC_LABELS.values() if m != HEADLINE)):
            lines += comparison_table(comparison, metric) + [""]
    return "\n".join(lines)


def draw_chart(comparisons: Mapping[str, Comparison], path: Path, title: str
               ) -> Path | None:
    """G of the base and each trained model per scope (bars), and each gain with its 95%
    interval (points with error bars); None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(SCOPES)
    fig, (means, gains) = plt.subplots(1, 2, figsize=(13, 4.2), constrained_layout=True)
    series = [("base", {s: r[HEADLINE].a_mean for s, r in next(iter(comparisons.values()))
                        .items() if r[HEADLINE] is not None})]
    series += [(name, {s: r[HEADLINE].b_mean for s, r in c.items() if r[HEADLINE] is not None})
               for name, c in comparisons.items()]
    width = 0.8 / len(series)
    for k, (name, values) in enumerate(series):
        means.bar([i + k * width for i in range(len(labels))],
                  [values.get(s, math.nan) for s in labels], width, label=name)
    means.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels, rotation=30,
                     ha="right", fontsize=8)
    means.set_ylim(0, 1)
    means.set_ylabel(f"{HEADLINE} (mean)")
    means.legend(fontsize=8)
    for k, (name, comparison) in enumerate(comparisons.items()):
        found = [(i, comparison[s][HEADLINE]) for i, s in enumerate(labels)
                 if comparison[s][HEADLINE] is not None]
        gains.errorbar([i + 0.15 * k for i, _ in found], [r.difference for _, r in found],
                       yerr=[[r.difference - r.low for _, r in found],
                             [r.high - r.difference for _, r in found]],
                       fmt="o", capsize=3, label=f"{name} - base")
    gains.axhline(0, color="grey", linewidth=0.8)
    gains.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    gains.set_ylabel(f"gain in {HEADLINE} (95% CI over videos)")
    gains.legend(fontsize=8)
    fig.suptitle(title, fontsize=9, wrap=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _json(comparisons: Mapping[str, Comparison]) -> dict:
    return {name: {scope: {metric: None if r is None else asdict(r)
                           for metric, r in metrics.items()}
                   for scope, metrics in comparison.items()}
            for name, comparison in comparisons.items()}


def evaluate_run(config: dict, root: Path, base_model: str, limit: int | None = None) -> int:
    """Score the run's models on ``data.eval`` and compare them (see the module docstring);
    prints the G tables. Exit code: 0, or 3 when the judge failed on too many answers of a
    model (its report is still written). ConfigError (exit 2) on a bad setting or an
    overlap not allowed; EvaluationError when lmms-eval fails on a model."""
    heldout = check_heldout(config)
    settings = evaluation_settings(config)
    records = eval_records(config, limit)
    models = run_models(base_model, root)
    if len(models) < 2:
        raise ConfigError(f"no trained model under {root}: neither sft/final nor grpo/final "
                          "(train first: python -m evads_rl rl ...)")
    folder = root / EVALUATION_DIR
    questions = write_questions(records, folder)
    scored = [score_model(model, config, questions, folder) for model in models]
    comparisons = {s.model.name: paired_comparison(scored[0].run, s.run) for s in scored[1:]}
    source = eval_file(config)
    report = format_report(scored, comparisons, records, source, heldout, settings)
    (folder / REPORT_FILE).write_text(report + "\n", encoding="utf-8")
    (folder / COMPARISON_FILE).write_text(json.dumps(
        {"heldout_warning": heldout.warning, "questions": len(records), "source": source,
         "models": {s.model.name: s.model.path for s in scored},
         "comparisons": _json(comparisons)}, indent=1) + "\n", encoding="utf-8")
    chart = draw_chart(comparisons, folder / CHART_FILE,
                       f"{HEADLINE} before and after training on {len(records)} questions of "
                       f"{Path(source).name}" + (" (tiny random models: meaningless)" if any(
                           s.run.info.get("random_model") for s in scored) else ""))
    _print_summary(scored, comparisons, heldout, folder / REPORT_FILE, chart)
    return max(s.exit_code for s in scored)


def _print_summary(scored: Sequence[ScoredModel], comparisons: Mapping[str, Comparison],
                   heldout: HeldOut, report: Path, chart: Path | None) -> None:
    lines = [heldout.warning] if heldout.warning else []
    if any(s.run.info.get("random_model") for s in scored):
        lines.append(f"NOTE: {RANDOM_MODELS}.")
    for name, comparison in comparisons.items():
        lines += [f"before/after: base ({scored[0].model.path}) -> {name}, {HEADLINE}:",
                  *comparison_table(comparison, HEADLINE), ""]
    lines.append(f"report: {report}" + (f", chart: {chart}" if chart else ""))
    print("\n".join(lines), flush=True)
