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
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from transformers import TrainerCallback

# Shown on stdout (all keys go to the JSONL file).
STDOUT_KEYS = ("loss", "reward", "rewards/answer_reward/mean", "rewards/trace_reward/mean",
               "rewards/format_reward/mean", "judge/judge_errors", "judge/error_rate",
               "completions/mean_length",
               "mean_token_accuracy")


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
    """Appends one JSON object per trainer log event to ``metrics.jsonl`` in ``run_dir``."""

    def __init__(self, run_dir: str | Path, stage: str, notice: str | None = None,
                 judge: str | None = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.stage, self.notice, self.judge = stage, notice, judge

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.path.is_file():
            keep_steps_up_to(self.path, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        entry = {"stage": self.stage, "step": state.global_step,
                 **{key: _plain(value) for key, value in logs.items()}}
        if self.judge:
            entry["judge"] = self.judge
        if self.notice:
            entry["model_notice"] = self.notice
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        shown = " ".join(f"{key.split('/')[-2] if key.endswith('/mean') else key}="
                         f"{logs[key]:.4g}" for key in STDOUT_KEYS
                         if isinstance(logs.get(key), (int, float)))
        if shown:
            print(f"[{self.stage} step {state.global_step}] {shown}", flush=True)
