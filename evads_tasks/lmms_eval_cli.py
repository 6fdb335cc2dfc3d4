"""The ``lmms_eval`` console script: lmms-eval's own CLI with the E-VAds tasks included.

``lmms_eval --model M --tasks evads_perception,evads_reasoning ...`` behaves like
``lmms-eval`` with our include path added to any ``--include_path`` the user gave
(both are searched). lmms-eval's CLI takes a single include path string, so the
paths are handed to its entry functions as a list instead of through argv.

lmms-eval runs ``process_results`` (our judge calls) on ``--process_docs_parallel``
threads, 4 by default, which would cap judge concurrency at 4 whatever
``$EVADS_JUDGE_CONCURRENCY`` says; unless the user passes the flag, it is set to that
variable (default 16).
"""

from __future__ import annotations

import argparse
import os
import sys

from .judge.config import CONCURRENCY_ENV
from .judge.http_judge import DEFAULT_CONCURRENCY
from .tasks import INCLUDE_PATH

_EVAL_FLAG = "--include_path"
_TASKS_FLAG = "--include-path"
PARALLEL_FLAGS = ("--process_docs_parallel", "--process-docs-parallel")


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
    the user gave the flag in either spelling."""
    if any(arg == flag or arg.startswith(flag + "=") for arg in argv for flag in PARALLEL_FLAGS):
        return argv
    threads = env.get(CONCURRENCY_ENV, "").strip() or str(DEFAULT_CONCURRENCY)
    return [*argv, PARALLEL_FLAGS[0], threads]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    program = sys.argv[0]
    if argv and argv[0] == "tasks":
        from lmms_eval.cli.dispatch import _build_parser

        rest, paths = split_include_paths(argv, _TASKS_FLAG)
        args = _build_parser().parse_args(rest)
        args.include_path = with_evads(paths)
        args.func(args)
        return
    if argv and (argv[0] == "eval" and len(argv) > 1 or argv[0].startswith("-")) \
            and argv not in (["--help"], ["-h"]):
        from lmms_eval.__main__ import cli_evaluate

        rest, paths = split_include_paths(argv[1:] if argv[0] == "eval" else argv, _EVAL_FLAG)
        sys.argv = [program, *with_judge_parallelism(rest, dict(os.environ))]
        cli_evaluate(argparse.Namespace(include_path=with_evads(paths)))
        return
    from lmms_eval.cli.dispatch import main as lmms_eval_main

    sys.argv = [program, *argv]
    lmms_eval_main()


if __name__ == "__main__":
    main()
