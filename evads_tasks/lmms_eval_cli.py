"""The ``lmms_eval`` console script: lmms-eval's own CLI with the E-VAds tasks included.

``lmms_eval --model M --tasks evads_perception,evads_reasoning ...`` behaves like
``lmms-eval`` with our include path added to any ``--include_path`` the user gave
(both are searched). lmms-eval's CLI takes a single include path string, so the
paths are handed to its entry functions as a list instead of through argv.

lmms-eval runs ``process_results`` (our judge calls) on ``--process_docs_parallel``
threads, 4 by default, which would cap judge concurrency at 4 whatever
``$EVADS_JUDGE_CONCURRENCY`` says; unless the user passes the flag, it is set to that
variable (default 16).

lmms-eval 0.7.3 exits 0 when an evaluation fails: ``cli_evaluate`` catches the error, logs
``Error during evaluation: RetryError[<Future ... raised AnnotationError>]`` and returns,
and a failure to save the results is only a logged warning. So that scripts (``make eval``)
stop, this wrapper watches each evaluation (lmms-eval's ``cli_evaluate_single``) and exits 1
when one raised or wrote no new ``*_results.json`` under its ``--output_path``, printing the
root cause (our AnnotationError or JudgeConfigError text, not tenacity's wrapper) last.

Before lmms-eval starts (and so before a model is loaded), a run of E-VAds tasks probes
every video (``tasks.utils.preflight``): a bad one ends it at once, one ``error:`` line per
bad file, the last naming a file. After an evaluation wrote its results, the wrapper exits
3 when the judge failed on more than ``$EVADS_MAX_JUDGE_ERROR_RATE`` of the judged answers
(``judge.error_rate``), the count and the first error last.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import traceback
from collections.abc import Callable
from pathlib import Path

from tenacity import RetryError

from .core.annotations import AnnotationError
from .core.judge.api import JudgeConfigError
from .core.judge.config import (
    CONCURRENCY_ENV,
    PROTOCOL_ENV,
    apply_protocol_flag,
    judge_concurrency,
    judge_protocol,
)
from .core.judge.error_rate import EXIT_JUDGE_ERRORS, RUN_TALLY, max_judge_error_rate
from .core.judge.http_judge import DEFAULT_CONCURRENCY
from .core.judge.protocols import PROTOCOLS
from .core.redaction import env_secrets, redact
from .core.video_probe import BadVideosError
from .runs.scored_runs import RESULTS_GLOB, finish_results
from .tasks import INCLUDE_PATH

_EVAL_FLAG = "--include_path"
_TASKS_FLAG = "--include-path"
PROTOCOL_FLAG = "--protocol"
PARALLEL_FLAGS = ("--process_docs_parallel", "--process-docs-parallel")
HELP_FLAGS = ("-h", "--help")
WRAPPER_HELP = (
    "This lmms_eval is the E-VAds wrapper around lmms-eval's own command line (its help "
    "follows): it adds the E-VAds tasks (evads, evads_perception, evads_reasoning, "
    "evads_bp, ...) to the include path, after any --include_path you give, passes "
    f"--process_docs_parallel ${CONCURRENCY_ENV} (default {DEFAULT_CONCURRENCY}) unless you "
    "give that flag, so that judge calls run on that many threads, takes --protocol "
    f"{'|'.join(PROTOCOLS)} (sets ${PROTOCOL_ENV}), probes every video "
    "before loading the model, and exits 1 with the cause on the last line when an "
    "evaluation fails (lmms-eval itself exits 0), 3 when the judge failed on more than "
    "$EVADS_MAX_JUDGE_ERROR_RATE (default 0.02) of the answers."
)


def split_include_paths(argv: list[str], flag: str) -> tuple[list[str], list[str]]:
    """``argv`` without ``flag`` (``--flag X`` or ``--flag=X``) and the paths it named."""
    rest, paths = [], []
    args = iter(argv)
    for arg in args:
        if arg == flag:
            value = next(args, None)
            if value is None:
                raise SystemExit(f"error: {flag} needs a value")
            paths.append(value)
        elif arg.startswith(flag + "="):
            paths.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest, paths


def with_evads(paths: list[str]) -> list[str]:
    """The user's include paths (kept, first) plus ours."""
    return [*paths, *([str(INCLUDE_PATH)] if str(INCLUDE_PATH) not in paths else [])]


def with_judge_parallelism(argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` plus ``--process_docs_parallel $EVADS_JUDGE_CONCURRENCY`` (default 16) unless
    the user gave the flag in either spelling; JudgeConfigError when the variable is bad."""
    if any(arg == flag or arg.startswith(flag + "=") for arg in argv for flag in PARALLEL_FLAGS):
        return argv
    return [*argv, PARALLEL_FLAGS[0], str(judge_concurrency(env))]


def root_cause(error: BaseException) -> BaseException:
    """The error behind tenacity's RetryError: lmms-eval retries building a task (our
    ``process_docs``) and scoring a sample, and raises the RetryError when all tries fail."""
    while isinstance(error, RetryError) and error.last_attempt.failed:
        error = error.last_attempt.exception()
    return error


def failure_message(error: BaseException) -> str:
    """The root cause on one line: our errors' text as is, anything else with its type.

    Bad videos keep one line per file (the last naming one), and secrets are redacted."""
    cause = root_cause(error)
    if isinstance(cause, BadVideosError):
        return redact("\n".join(cause.lines), env_secrets())
    text = redact(" ".join(str(cause).split()), env_secrets())
    return text if isinstance(cause, (AnnotationError, JudgeConfigError)) else \
        f"{type(cause).__name__}: {text}"


def results_files(output_path: str | Path) -> dict[Path, int]:
    """Every lmms-eval results JSON under ``output_path`` with its modification time (ns)."""
    root = Path(output_path)
    return {p: p.stat().st_mtime_ns for p in root.rglob(RESULTS_GLOB)} if root.is_dir() else {}


class EvaluationWatcher:
    """Stands in for lmms-eval's ``cli_evaluate_single`` (one evaluation; a ``--config`` file
    can list several) and records why an evaluation failed, then lets lmms-eval go on as
    usual: it logs the error and continues with the next one."""

    def __init__(self, evaluate_one: Callable, max_judge_error_rate: float = 1.0) -> None:
        self.evaluate_one = evaluate_one
        self.max_judge_error_rate = max_judge_error_rate
        self.failures: list[str] = []
        self.judge_failures: list[str] = []

    def __call__(self, args: argparse.Namespace) -> tuple:
        output_path = getattr(args, "output_path", None)
        before = results_files(output_path) if output_path else {}
        RUN_TALLY.reset()
        try:
            results, samples = self.evaluate_one(args)
        except SystemExit:  # lmms-eval exits 0 when --tasks is missing, as for --tasks list
            if not getattr(args, "tasks", None):
                self.failures.append("no --tasks given: name the tasks to run (e.g. --tasks "
                                     "evads)")
            raise
        except Exception as error:
            self.failures.append(failure_message(error))
            raise
        # results is None on the processes other than the main one, which write nothing
        if results is not None and output_path:
            after = results_files(output_path)
            written = [path for path, stamp in after.items() if before.get(path) != stamp]
            if not written:
                self.failures.append(f"lmms-eval wrote no {RESULTS_GLOB} under {output_path} "
                                     "(see its log above)")
            for path in written:  # lmms-eval cannot tell the tasks which model runs
                self.failures += finish_results(path, bool(getattr(args, "log_samples", 0)))
        if (failure := RUN_TALLY.failure(self.max_judge_error_rate)) is not None:
            self.judge_failures.append(failure)
        return results, samples


def evads_tasks_requested(argv: list[str]) -> bool:
    """Whether ``--tasks`` names an E-VAds task or group (all start with ``evads``)."""
    rest = iter(argv)
    for arg in rest:
        value = next(rest, "") if arg == "--tasks" else \
            arg.split("=", 1)[1] if arg.startswith("--tasks=") else None
        if value is not None and any(name.strip().startswith("evads")
                                     for name in value.split(",")):
            return True
    return False


def print_failures(messages: list[str]) -> None:
    """Each message as ``error: ...`` lines on stderr, after lmms-eval's log on stdout and
    after its progress bars (one left open by a crash would print at exit, after them)."""
    close_progress_bars()
    sys.stdout.flush()
    for message in dict.fromkeys(messages):
        for line in message.splitlines():
            print(f"error: {line}", file=sys.stderr)


def close_progress_bars() -> None:
    """Close every tqdm bar still open, so that none prints after the cause."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def evaluate(evaluation_args: argparse.Namespace, max_rate: float = 1.0) -> int:
    """lmms-eval's ``cli_evaluate`` with every evaluation watched: 0; 1 after printing each
    failure's cause (the last line is the last failure's cause); 3 when the results were
    written but the judge failed on more than ``max_rate`` of the judged answers."""
    import lmms_eval.__main__ as lmms_eval_entry

    watcher = EvaluationWatcher(lmms_eval_entry.cli_evaluate_single, max_rate)
    lmms_eval_entry.cli_evaluate_single = watcher  # cli_evaluate looks it up on each call
    try:
        lmms_eval_entry.cli_evaluate(evaluation_args)
    except SystemExit:
        if not watcher.failures:
            raise
    except Exception as error:  # --verbosity DEBUG re-raises; a bad --config fails early
        traceback.print_exc()
        if failure_message(error) not in watcher.failures:
            watcher.failures.append(failure_message(error))
    finally:
        lmms_eval_entry.cli_evaluate_single = watcher.evaluate_one
    if watcher.failures:
        print_failures(watcher.judge_failures + watcher.failures)
        return 1
    if watcher.judge_failures:
        print_failures(watcher.judge_failures)
        return EXIT_JUDGE_ERRORS
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    program = sys.argv[0]
    if any(arg in HELP_FLAGS for arg in argv):
        print(textwrap.fill(WRAPPER_HELP, width=88) + "\n", flush=True)
    if argv and argv[0] == "tasks":
        from lmms_eval.cli.tasks_cmd import add_tasks_parser

        rest, paths = split_include_paths(argv, _TASKS_FLAG)
        parser = argparse.ArgumentParser(prog="lmms-eval")
        add_tasks_parser(parser.add_subparsers(dest="subcommand"))
        args = parser.parse_args(rest)
        args.include_path = with_evads(paths)  # a list: lmms-eval's flag takes one path
        args.func(args)
        return 0
    if argv and (argv[0] == "eval" and len(argv) > 1 or argv[0].startswith("-")) \
            and not (len(argv) == 1 and argv[0] in HELP_FLAGS):
        rest, paths = split_include_paths(argv[1:] if argv[0] == "eval" else argv, _EVAL_FLAG)
        rest, protocols = split_include_paths(rest, PROTOCOL_FLAG)
        if protocols and protocols[-1] not in PROTOCOLS:
            print_failures([f"{PROTOCOL_FLAG} {protocols[-1]!r}: use one of "
                            f"{', '.join(PROTOCOLS)}"])
            return 1
        apply_protocol_flag(protocols[-1] if protocols else None)
        try:
            sys.argv = [program, *with_judge_parallelism(rest, dict(os.environ))]
            max_rate = max_judge_error_rate()
            if evads_tasks_requested(rest):
                judge_protocol()  # the official protocol's script, read before any work
                from .tasks.utils import preflight
                preflight()
        except (JudgeConfigError, BadVideosError) as error:
            print_failures([failure_message(error)])
            return 1
        return evaluate(argparse.Namespace(include_path=with_evads(paths)), max_rate)
    from lmms_eval.cli.dispatch import main as lmms_eval_main

    sys.argv = [program, *argv]
    lmms_eval_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
