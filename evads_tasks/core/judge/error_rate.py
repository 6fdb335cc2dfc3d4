"""When judge errors make a run's numbers untrustworthy: one rule for every command.

Why: a run whose judge failed on every answer used to exit 0 with all-NaN results, so a
script or CI job saw success. Each command that judges (the ``lmms_eval`` wrapper,
``python -m evads_tasks judge``) counts the answers it sent to the judge and the ones the
judge failed on, writes its results as usual, and then exits ``EXIT_JUDGE_ERRORS`` when the
failed share is above ``$EVADS_MAX_JUDGE_ERROR_RATE`` (default 0.02), with the count and the
first error as its last line.

Problems that are not judge errors but must still fail a run after it wrote what it could
(the judge cache became unwritable mid-run) are recorded with :meth:`JudgeErrorTally.problem`
and reported by :meth:`JudgeErrorTally.failure` before the error-rate line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from ..redaction import env_secrets, redact
from .api import JudgeConfigError, JudgeResult

MAX_ERROR_RATE_ENV = "EVADS_MAX_JUDGE_ERROR_RATE"
DEFAULT_MAX_ERROR_RATE = 0.02
# Results were written, but the judge failed on too many answers (1 = the run failed).
EXIT_JUDGE_ERRORS = 3


def share_setting(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    """The environment variable ``name`` as a share in [0, 1] (``default`` when unset);
    JudgeConfigError naming it otherwise."""
    env = os.environ if env is None else env
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        share = float(text)
    except ValueError:
        share = -1.0
    if not 0 <= share <= 1:
        raise JudgeConfigError(f"{name} must be a number from 0 to 1, got {text!r}")
    return share


def max_judge_error_rate(env: Mapping[str, str] | None = None) -> float:
    """``$EVADS_MAX_JUDGE_ERROR_RATE`` in [0, 1] (default 0.02); JudgeConfigError if not."""
    return share_setting(MAX_ERROR_RATE_ENV, DEFAULT_MAX_ERROR_RATE, env)


def error_rate_failure(errors: int, judged: int, first_error: str | None,
                       max_rate: float) -> str | None:
    """The one-line failure when ``errors / judged`` passes ``max_rate``, else None."""
    if not judged or errors / judged <= max_rate:
        return None
    first = redact(" ".join((first_error or "?").split()), env_secrets())
    return (f"the judge failed on {errors} of {judged} judged answers "
            f"({errors / judged:.1%}, above {MAX_ERROR_RATE_ENV}={max_rate:g}); "
            f"first error: {first}")


class JudgeErrorTally:
    """Thread-safe count of judged answers, failed ones and the first failure's text, and
    the run-fatal problems met (each once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.judged, self.errors, self.first_error = 0, 0, None
            self.problems: list[str] = []

    def problem(self, message: str) -> None:
        """Record a problem that fails the run once its results are written (the message
        names the file and how to resume); the same message is kept once."""
        with self._lock:
            if message not in self.problems:
                self.problems.append(message)

    def add(self, result: JudgeResult, *, judged: bool = True) -> None:
        """Count one verdict; ``judged=False`` for an empty answer scored 0 by rule."""
        if not judged:
            return
        with self._lock:
            self.judged += 1
            if result.score is None:
                self.errors += 1
                if self.first_error is None:
                    self.first_error = result.error

    def failure(self, max_rate: float | None = None) -> str | None:
        """The run's failure, one line each: the problems first, then the error-rate line;
        None when there is neither."""
        with self._lock:
            rate = error_rate_failure(self.errors, self.judged, self.first_error,
                                      max_judge_error_rate() if max_rate is None else max_rate)
            lines = [redact(" ".join(p.split()), env_secrets()) for p in self.problems]
            return "\n".join([*lines, *([rate] if rate else [])]) or None


# The process's tally for lmms-eval runs: the task's process_results adds to it and the
# ``lmms_eval`` wrapper reads it after each evaluation.
RUN_TALLY = JudgeErrorTally()
