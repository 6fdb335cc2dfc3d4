"""Stop training when the judge is dead: MG-GRPO on a format-only reward is another experiment.

Why: a failed judgement gives its term no credit (0), which is right for a rare failure but
turns the reward into the format term alone when the judge is down, and training used to
go on to the end and save ``final/`` as if nothing happened. Every reward batch (a TRL
reward call, a verl ``compute_score_batch`` / ``compute_score`` call) adds its judge request
and error counts to a :class:`JudgeErrorWindow`; when the error share over the last
``batches`` reward batches that sent requests reaches ``max_error_rate``, it raises
:class:`JudgeFailureError`. Defaults: every request of 2 consecutive batches failed.

TRL (``evads_rl.train``): the settings come from the run config's ``judge_stop`` section;
the error stops the step before its update, a checkpoint of the last finished step is
saved, no ``final/`` is written, and ``python -m evads_rl`` exits 4 naming the checkpoint
(``--resume`` continues once the judge is back). verl (``evads_rl.verl_reward``): from
``$EVADS_JUDGE_STOP_RATE`` / ``$EVADS_JUDGE_STOP_BATCHES``; the error propagates out of the
reward function and ends the verl job (its last checkpoint is the one ``trainer.save_freq``
wrote).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

STOP_RATE_ENV = "EVADS_JUDGE_STOP_RATE"
STOP_BATCHES_ENV = "EVADS_JUDGE_STOP_BATCHES"
CONFIG_SECTION = "judge_stop"
CONFIG_KEYS = ("max_error_rate", "batches")
EXIT_JUDGE_DEAD = 4  # python -m evads_rl: stopped by a dead judge, checkpoint saved


class JudgeFailureError(RuntimeError):
    """The judge failed on too many requests of the last reward batches."""

    checkpoint: str | None = None


@dataclass(frozen=True)
class JudgeStopRule:
    """Stop when the error share over the last ``batches`` reward batches >= ``max_error_rate``."""

    max_error_rate: float = 1.0
    batches: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.max_error_rate <= 1 or self.batches < 1:
            raise ValueError(f"needs 0 < max_error_rate <= 1 and batches >= 1, "
                             f"got {self.max_error_rate!r} and {self.batches!r}")

    @classmethod
    def from_mapping(cls, values: Mapping | None) -> JudgeStopRule:
        """From the run config's ``judge_stop`` section (missing keys keep the defaults)."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(f"{CONFIG_SECTION}: unknown key(s) {unknown}; it takes "
                             f"{', '.join(CONFIG_KEYS)}")
        try:
            return cls(max_error_rate=float(values.get("max_error_rate", cls.max_error_rate)),
                       batches=int(values.get("batches", cls.batches)))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{CONFIG_SECTION}: {error}") from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JudgeStopRule:
        """From ``$EVADS_JUDGE_STOP_RATE`` and ``$EVADS_JUDGE_STOP_BATCHES`` (verl)."""
        env = os.environ if env is None else env
        values = {key: env[name].strip() for key, name in
                  (("max_error_rate", STOP_RATE_ENV), ("batches", STOP_BATCHES_ENV))
                  if env.get(name, "").strip()}
        try:
            return cls.from_mapping(values)
        except ValueError as error:
            raise ValueError(f"{STOP_RATE_ENV}/{STOP_BATCHES_ENV}: {error}") from None


class JudgeErrorWindow:
    """Thread-safe judge counts of the last reward batches, checked against a rule."""

    def __init__(self, rule: JudgeStopRule = JudgeStopRule()) -> None:
        self.rule = rule
        self._lock = threading.Lock()
        self._batches: deque[tuple[int, int]] = deque(maxlen=rule.batches)
        self.last_error: str | None = None

    def add_batch(self, requests: int, errors: int, error: str | None = None) -> None:
        """Record one reward batch (``error``: one of its judge errors). Raises
        JudgeFailureError when the window breaks the rule."""
        with self._lock:
            self.last_error = error or self.last_error
            if requests:
                self._batches.append((requests, errors))
            if len(self._batches) == self.rule.batches:
                sent = sum(r for r, _ in self._batches)
                failed = sum(e for _, e in self._batches)
                if failed / sent >= self.rule.max_error_rate:
                    raise JudgeFailureError(
                        f"the judge failed on {failed} of {sent} requests of the last "
                        f"{self.rule.batches} reward batch(es) ({failed / sent:.0%}, at or "
                        f"above judge_stop.max_error_rate={self.rule.max_error_rate:g}): "
                        f"the reward would be the format term alone; last error: "
                        f"{self.last_error or '?'}")
