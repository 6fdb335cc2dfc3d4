"""Per-step training log: every metric the trainer logs, to ``<run dir>/metrics.jsonl`` and stdout.

TRL's GRPO trainer already logs each reward function's mean
(``rewards/answer_reward/mean`` = accuracy-scaled G of the answer, ``.../trace_reward/...``,
``.../format_reward/...``), the weighted ``reward``, completion lengths
(``completions/mean_length``) and what the reward functions report through ``log_metric``
(``judge/judge_errors``, ``judge/requests``). This callback writes them as they come, with
the stage, the step, the judge that scored (GRPO) and the tiny-model notice, so a long
run's log survives a crash. When training begins it drops the entries past the step it
starts from: a resumed run appends after its checkpoint's step (the steps it trains again
are not logged twice), a fresh run in the same folder starts a fresh log.

Validation (``data.eval``): the trainer evaluates each task's questions as a dataset of its
own, so each evaluation comes as one log event per task (``eval_BP_loss``, ``eval_BP_runtime``
from the Trainer, and TRL's own metrics as plain ``eval_reward``, ``eval_rewards/...``). This
callback gathers the five into ONE entry per evaluation: every metric per task
(``eval_BP_reward``, ``eval_BP_loss``, ...) and overall (``eval_reward``, ``eval_loss``: the
mean over tasks weighted by their question counts; ``eval_runtime`` summed), shown as one
progress line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from transformers import TrainerCallback

# Shown on stdout (all keys go to the JSONL file).
STDOUT_KEYS = ("loss", "reward", "rewards/answer_reward/mean", "rewards/trace_reward/mean",
               "rewards/format_reward/mean", "judge/judge_errors", "judge/error_rate",
               "completions/mean_length",
               "mean_token_accuracy")


EVAL_PREFIX = "eval_"
# Per-task metrics that are not means: summed (time) or left out (rates, running counts).
SUMMED_EVAL_METRICS = ("runtime",)
UNCOMBINED_EVAL_METRICS = ("samples_per_second", "steps_per_second", "num_tokens",
                           "model_preparation_time")
HEADLINE_EVAL_METRICS = ("reward", "loss")  # the progress line's value, the first present


def eval_task_of(logs: Mapping, tasks) -> str | None:
    """The task whose evaluation a log event reports (the Trainer prefixes its own metrics
    with ``eval_<task>_``), None for a training log."""
    return next((task for task in tasks
                 if any(key.startswith(f"{EVAL_PREFIX}{task}_") for key in logs)), None)


def task_eval_metrics(task: str, logs: Mapping) -> dict:
    """One task's evaluation metrics by bare name (``loss``, ``reward``, ...): the Trainer's
    ``eval_<task>_*`` and TRL's ``eval_*`` of the same event."""
    own = f"{EVAL_PREFIX}{task}_"
    return {key[len(own):] if key.startswith(own) else key[len(EVAL_PREFIX):]: value
            for key, value in logs.items() if key.startswith(EVAL_PREFIX)}


def combined_eval(per_task: Mapping[str, Mapping], sizes: Mapping[str, int]) -> dict:
    """One evaluation's log entry: ``eval_<task>_<metric>`` for each task, and overall
    ``eval_<metric>``, the mean weighted by each task's question count (over the tasks with
    a value; time summed, rates left out)."""
    entry = {f"{EVAL_PREFIX}{task}_{name}": value
             for task, metrics in per_task.items() for name, value in metrics.items()}
    names = dict.fromkeys(name for metrics in per_task.values() for name in metrics)
    for name in names:
        if name in UNCOMBINED_EVAL_METRICS:
            continue
        values = [(sizes[task], metrics[name]) for task, metrics in per_task.items()
                  if isinstance(metrics.get(name), (int, float))]
        if not values:
            continue
        total = sum(value for _, value in values)
        entry[f"{EVAL_PREFIX}{name}"] = (total if name in SUMMED_EVAL_METRICS else
                                          sum(n * value for n, value in values)
                                          / sum(n for n, _ in values))
    return entry


def eval_progress_line(stage: str, step: int, entry: Mapping, tasks) -> str | None:
    """``[grpo eval step 2] reward=0.31 (BP 0.25 CM 0.4 ...)``: the headline metric overall
    and per task."""
    name = next((n for n in HEADLINE_EVAL_METRICS
                 if isinstance(entry.get(f"{EVAL_PREFIX}{n}"), (int, float))), None)
    if name is None:
        return None
    shown = " ".join(f"{task} {entry[f'{EVAL_PREFIX}{task}_{name}']:.4g}" for task in tasks
                     if isinstance(entry.get(f"{EVAL_PREFIX}{task}_{name}"), (int, float)))
    return (f"[{stage} eval step {step}] {name}={entry[f'{EVAL_PREFIX}{name}']:.4g} "
            f"({shown})")


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _logged_step(line: str) -> int | None:
    """The step of one log line; None for a line torn by a crash mid-write."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def keep_steps_up_to(path: Path, step: int) -> None:
    """Rewrite a metrics log without its entries past ``step`` or torn lines (atomically)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if (logged := _logged_step(line)) is not None
            and logged <= step]
    if len(kept) != len(lines):
        partial = path.with_suffix(".jsonl.tmp")
        partial.write_text("".join(k if k.endswith("\n") else k + "\n" for k in kept),
                           encoding="utf-8")
        partial.replace(path)


class StepLogCallback(TrainerCallback):
    """Appends one JSON object per trainer log event to ``metrics.jsonl`` in ``run_dir`` (one
    per evaluation: see the module docstring).

    ``eval_sizes``: the validation set's question count per task (empty: no validation);
    ``heldout_warning``: written into every entry when the run was allowed to evaluate on
    training videos. ``last_eval_step`` is the step of the last complete evaluation."""

    def __init__(self, run_dir: str | Path, stage: str, notice: str | None = None,
                 judge: str | None = None, eval_sizes: Mapping[str, int] | None = None,
                 heldout_warning: str | None = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.stage, self.notice, self.judge = stage, notice, judge
        self.eval_sizes = dict(eval_sizes or {})
        self.heldout_warning = heldout_warning
        self.last_eval_step: int | None = None
        self._evaluated: dict[str, dict] = {}  # this evaluation's tasks so far

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.path.is_file():
            keep_steps_up_to(self.path, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        task = eval_task_of(logs, self.eval_sizes)
        if task is not None:  # on every process: the end-of-training evaluation relies on it
            self._evaluated[task] = task_eval_metrics(task, logs)
            if set(self._evaluated) < set(self.eval_sizes):
                return
            epoch = {"epoch": logs["epoch"]} if "epoch" in logs else {}
            logs = {**epoch, **combined_eval(self._evaluated, self.eval_sizes)}
            self._evaluated = {}
            self.last_eval_step = state.global_step
        if not state.is_world_process_zero:
            return
        entry = {"stage": self.stage, "step": state.global_step,
                 **{key: _plain(value) for key, value in logs.items()}}
        if self.judge:
            entry["judge"] = self.judge
        if self.notice:
            entry["model_notice"] = self.notice
        if self.heldout_warning:
            entry["heldout_warning"] = self.heldout_warning
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        if task is not None:
            line = eval_progress_line(self.stage, state.global_step, logs, self.eval_sizes)
            if line:
                print(line, flush=True)
            return
        shown = " ".join(f"{key.split('/')[-2] if key.endswith('/mean') else key}="
                         f"{logs[key]:.4g}" for key in STDOUT_KEYS
                         if isinstance(logs.get(key), (int, float)))
        if shown:
            print(f"[{self.stage} step {state.global_step}] {shown}", flush=True)
