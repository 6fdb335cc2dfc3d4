"""How an lmms-eval run of the E-VAds tasks ends, the same in every launch mode.

Why here and not in a wrapper: lmms-eval 0.7.3's command line catches every ``Exception`` of
an evaluation, logs it and exits 0, and a failure to write the results is only a logged
warning. Users start lmms-eval in several ways (the ``lmms_eval`` / ``lmms-eval`` console
scripts, ``python -m lmms_eval --include_path ...``, ``LMMS_EVAL_PLUGINS=evads_tasks``,
``accelerate launch -m lmms_eval``), and only the task's own hooks run in all of them:

- a configuration error found while the tasks are built (an undecodable video, no judge, an
  unreachable judge) is raised as :class:`RunStopped`, a ``SystemExit``: no ``except
  Exception`` of lmms-eval and no tenacity retry holds it, so the process ends at once with
  exit 1, before any generation, the cause (naming the file) as the last line;
- what goes wrong later (lmms-eval caught an evaluation's error, could not write its results
  or samples, or the judge failed on more than ``$EVADS_MAX_JUDGE_ERROR_RATE`` of the
  answers) is noted while the run goes on, and when the process exits, after lmms-eval wrote
  everything it could, the files it wrote under ``--output_path`` are checked (whole results
  JSON, one complete line per logged sample: ``core.run_files``), the ``error:`` lines are
  printed last and the exit status becomes 1 (or 3 for judge errors alone).

At a clean exit the run's objects are frozen out of the garbage collector (``gc.freeze``):
the interpreter's last collections would otherwise walk every doc, instance and sample of
the run (about 2 s at the published test split's 16,925 questions) only to free memory the
process hands back anyway. lmms-eval's own exit handlers still run after ours.

Under ``accelerate``/``torchrun`` each rank is its own process: every rank exits non-zero on
a failure it can see (the judge error rate is checked per rank, on the answers that rank
judged), and only rank 0 prints the ``error:`` lines. Called through
lmms-eval's Python API (``simple_evaluate``) nothing ends the caller's process:
:class:`RunStopped` can be caught, and judge errors are in the returned results.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from tenacity import RetryError

from evads_tasks.core.annotations import AnnotationError
from evads_tasks.core.judge.api import JudgeConfigError
from evads_tasks.core.judge.error_rate import EXIT_JUDGE_ERRORS, RUN_TALLY
from evads_tasks.core.redaction import env_secrets, redact
from evads_tasks.core.run_files import RESULTS_GLOB, results_written_since, run_file_problems
from evads_tasks.core.video_probe import BadVideosError
from evads_tasks.tasks import flag_values

EXIT_FAILED = 1
# Under accelerate/torchrun the first rank to exit non-zero gets the others killed: the other
# ranks wait this long, so that rank 0 prints the error lines before it is.
RANK_EXIT_DELAY_S = 5.0
# lmms-eval's log lines (loguru, WARNING and above) that mean the run did not do its work.
_FAILURE_PREFIXES = ("Error during evaluation", "Could not save")


def rank() -> int:
    """This process's rank under accelerate/torchrun (0 when not distributed)."""
    return int(os.environ.get("RANK", "0") or 0)


def root_cause(error: BaseException) -> BaseException:
    """The error behind tenacity's RetryError: lmms-eval retries building a task and
    scoring a sample, and raises the RetryError when all tries failed."""
    while isinstance(error, RetryError) and error.last_attempt.failed:
        error = error.last_attempt.exception()
    return error


def failure_lines(error: BaseException) -> list[str]:
    """The root cause as ``error:`` lines: our errors' text as is (bad videos one line per
    file, the last naming one), anything else with its type; secrets redacted."""
    cause = root_cause(error)
    if isinstance(cause, BadVideosError):
        lines = list(cause.lines)
    else:
        text = " ".join(str(cause).split())
        known = isinstance(cause, (AnnotationError, JudgeConfigError))
        lines = [text if known else f"{type(cause).__name__}: {text}"]
    return [f"error: {redact(line, env_secrets())}" for line in lines]


class RunStopped(SystemExit):
    """A run stopped before any generation by a configuration error of the E-VAds tasks.

    A ``SystemExit`` so that lmms-eval's ``except Exception`` and tenacity's retries let it
    through: the process exits 1, printing the message (``error:`` lines, the cause last).
    Only rank 0 prints; the other ranks exit 1 silently. Python API callers can catch it.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = list(lines)
        super().__init__("\n".join(self.lines) if rank() == 0 else EXIT_FAILED)


def stop_run(error: BaseException) -> RunStopped:
    """The :class:`RunStopped` for a configuration error (raise it ``from error``); the run's
    exit status is then its own (1), with nothing else to say."""
    RUN_WATCH.stopped = True
    return RunStopped(failure_lines(error))


def launched_from_cli() -> bool:
    """Whether this process is lmms-eval's command line (any console script, ``python -m
    lmms_eval``, each rank of ``accelerate launch -m lmms_eval``), not a Python program that
    called ``simple_evaluate`` and must keep its own exit status."""
    return any(name in sys.modules for name in ("lmms_eval.__main__", "lmms_eval.cli.dispatch"))


class RunWatch:
    """Notes what went wrong during a command-line run; sets the exit status at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._installed = False
        self.started = time.time()
        self.stopped = False  # by a RunStopped, which says why itself
        self.failures: list[str] = []

    def install(self) -> None:
        """Once per process, on a command-line run: watch lmms-eval's log and decide the
        exit status at exit (registered while the tasks are built, so after lmms-eval's own
        handlers: it runs before them and ends the process)."""
        with self._lock:
            if self._installed or not launched_from_cli():
                return
            self._installed, self.started = True, time.time()
        from loguru import logger

        logger.add(self._log_line, level="WARNING", format="{message}",
                   filter=lambda record: record["name"].startswith("lmms_eval"))
        atexit.register(self.finish)

    def _log_line(self, message) -> None:
        """A loguru sink: lmms-eval's own failure lines, with the error being handled."""
        text = str(message).strip()
        if not text.startswith(_FAILURE_PREFIXES):
            return
        error = sys.exc_info()[1]
        if text.startswith("Could not save"):
            what = "results" if "aggregated" in text else "sample logs"
            cause = f": {failure_lines(error)[0].removeprefix('error: ')}" if error else ""
            lines = [f"error: lmms-eval could not write its {what}{cause}"]
        else:
            lines = failure_lines(error) if error else [f"error: lmms-eval: {text}"]
        with self._lock:
            self.failures.extend(lines)

    def file_problems(self, argv: list[str]) -> list[str]:
        """On rank 0 (the one that writes): what is wrong with the files this run wrote
        under its ``--output_path`` (none written, a results JSON or a sample log not
        whole), naming each file, the way to finish it last."""
        output_path = ([None] + flag_values(argv, "--output_path"))[-1]  # the last given
        if rank() != 0 or output_path is None:
            return []
        root = Path(output_path)
        written = results_written_since(root, self.started)
        if not written:
            return [] if self.failures else [
                f"error: lmms-eval wrote no {RESULTS_GLOB} under {root} (see its log above)"]
        samples = any(flag in argv for flag in ("--log_samples", "-s", "--predict_only", "-x"))
        problems = [f"error: {problem}" for path in written
                    for problem in run_file_problems(path, samples)]
        if problems or any("could not write" in line for line in self.failures):
            problems.append(f"error: the run in {root} is incomplete: free space (or choose "
                            "another --output_path) and run it again; verdicts in the judge "
                            "cache are reused, so its judging costs nothing again")
        return problems

    def exit_status(self) -> tuple[int, list[str]]:
        """(status, the ``error:`` lines to print last)."""
        judge_failure = RUN_TALLY.failure()
        lines = [f"error: {judge_failure}"] if judge_failure else []
        failures = [*self.failures, *self.file_problems(sys.argv[1:])]
        if failures:
            return EXIT_FAILED, lines + list(dict.fromkeys(failures))
        return (EXIT_JUDGE_ERRORS, lines) if lines else (0, [])

    def finish(self) -> None:
        if self.stopped:
            return
        status, lines = self.exit_status()
        if not status:
            gc.freeze()  # see the module docstring: the collector's last walk is skipped
            return
        close_progress_bars()
        sys.stdout.flush()
        if rank() == 0:
            print("\n".join(lines), file=sys.stderr)
        else:
            time.sleep(RANK_EXIT_DELAY_S)
        sys.stderr.flush()
        # atexit cannot change the exit status otherwise; everything was written already
        os._exit(status)


def close_progress_bars() -> None:
    """Close every tqdm bar still open (a crash can leave one), so none prints after the
    cause."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


RUN_WATCH = RunWatch()
