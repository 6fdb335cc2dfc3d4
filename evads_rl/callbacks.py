"""Per-step training log: every metric the trainer logs, to ``<run dir>/metrics.jsonl`` and stdout.

TRL's GRPO trainer already logs each reward function's mean
(``rewards/answer_reward/mean`` = accuracy-scaled G of the answer, ``.../trace_reward/...``,
``.../format_reward/...``), the weighted ``reward``, completion lengths
(``completions/mean_length``) and what the reward functions report through ``log_metric``
(``judge/judge_errors``, ``judge/requests``). This callback writes them as they come, so a
long run's log survives a crash and a resumed run appends to it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from transformers import TrainerCallback

# Shown on stdout (all keys go to the JSONL file).
STDOUT_KEYS = ("loss", "reward", "rewards/answer_reward/mean", "rewards/trace_reward/mean",
               "rewards/format_reward/mean", "judge/judge_errors", "completions/mean_length",
               "mean_token_accuracy")


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class StepLogCallback(TrainerCallback):
    """Appends one JSON object per trainer log event to ``metrics.jsonl`` in ``run_dir``."""

    def __init__(self, run_dir: str | Path, stage: str, notice: str | None = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.stage, self.notice = stage, notice

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        entry = {"stage": self.stage, "step": state.global_step,
                 **{key: _plain(value) for key, value in logs.items()}}
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
