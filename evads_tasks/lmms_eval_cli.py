"""The ``lmms_eval`` console script: lmms-eval's own command line with the E-VAds tasks included.

``lmms_eval --model M --tasks evads_perception,evads_reasoning ...`` is ``lmms-eval`` with
``LMMS_EVAL_PLUGINS=evads_tasks`` set (lmms-eval's plugin variable; ``evads_tasks.models``
adds our task folder to every task index), so any ``--include_path`` the user gives is
searched too. It adds two conveniences and no guarantee of its own: ``--protocol
evads|official`` (sets ``$EVADS_PROTOCOL``), and the checks every E-VAds run makes before
generation (``tasks.utils.preflight``: annotations, videos, judge) run here before the
model loads, so a bad video stops the run in seconds rather than after the model loaded.
Exit codes, the cause printed last and the judge's concurrency come from the tasks
themselves (``tasks/outcome.py``, ``tasks/judge_pool.py``), the same under ``python -m
lmms_eval``, ``LMMS_EVAL_PLUGINS`` and ``accelerate launch``.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from .core.judge.api import JudgeConfigError
from .core.judge.config import PROTOCOL_ENV, apply_protocol_flag, judge_protocol
from .core.judge.protocols import PROTOCOLS
from .tasks import task_names, with_evads
from .tasks.outcome import RunStopped, failure_lines

PLUGINS_ENV = "LMMS_EVAL_PLUGINS"
PLUGIN = "evads_tasks"
_TASKS_FLAG = "--include-path"
PROTOCOL_FLAG = "--protocol"
HELP_FLAGS = ("-h", "--help")
WRAPPER_HELP = (
    "This lmms_eval is the E-VAds wrapper around lmms-eval's own command line (its help "
    "follows): it runs lmms-eval with LMMS_EVAL_PLUGINS=evads_tasks, so the E-VAds tasks "
    "(evads, evads_perception, evads_reasoning, evads_bp, ...) are found beside any "
    f"--include_path you give, takes --protocol {'|'.join(PROTOCOLS)} (sets "
    f"${PROTOCOL_ENV}), and checks the annotations, every video and the judge before "
    "loading the model. Like every launch form of the E-VAds tasks it exits 1 with the "
    "cause on the last line when a run fails (lmms-eval itself exits 0), 3 when the judge "
    "failed on more than $EVADS_MAX_JUDGE_ERROR_RATE (default 0.02) of the answers."
)


def split_flag(argv: list[str], flag: str) -> tuple[list[str], list[str]]:
    """``argv`` without ``flag`` (``--flag X`` or ``--flag=X``) and the values it named."""
    rest, values = [], []
    args = iter(argv)
    for arg in args:
        if arg == flag:
            value = next(args, None)
            if value is None:
                raise SystemExit(f"error: {flag} needs a value")
            values.append(value)
        elif arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest, values


def with_plugin(env: dict[str, str]) -> str:
    """``$LMMS_EVAL_PLUGINS`` with evads_tasks added (the user's plugins kept)."""
    plugins = [p for p in (env.get(PLUGINS_ENV) or "").split(",") if p.strip()]
    return ",".join(plugins if PLUGIN in plugins else [*plugins, PLUGIN])


def evads_tasks_requested(argv: list[str]) -> bool:
    """Whether ``--tasks`` names an E-VAds task or group (all start with ``evads``)."""
    return any(name.startswith("evads") for name in task_names(argv))


def _names_tasks(argv: list[str]) -> bool:
    """Whether the command line says what to run (``--tasks``, or a ``--config`` file)."""
    return any(arg.split("=", 1)[0] in ("--tasks", "--config") for arg in argv)


def _tasks_command(argv: list[str]) -> int:
    """``lmms_eval tasks ...`` (lmms-eval's listing), with our folder indexed."""
    from lmms_eval.cli.tasks_cmd import add_tasks_parser

    rest, paths = split_flag(argv, _TASKS_FLAG)
    parser = argparse.ArgumentParser(prog="lmms-eval")
    add_tasks_parser(parser.add_subparsers(dest="subcommand"))
    args = parser.parse_args(rest)
    args.include_path = with_evads(paths)  # a list: lmms-eval's flag takes one path
    args.func(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in HELP_FLAGS for arg in argv):
        print(textwrap.fill(WRAPPER_HELP, width=88) + "\n", flush=True)
    if argv and argv[0] == "tasks":
        return _tasks_command(argv)
    argv, protocols = split_flag(argv, PROTOCOL_FLAG)
    if protocols and protocols[-1] not in PROTOCOLS:
        print(f"error: {PROTOCOL_FLAG} {protocols[-1]!r}: use one of {', '.join(PROTOCOLS)}",
              file=sys.stderr)
        return 1
    apply_protocol_flag(protocols[-1] if protocols else None)
    asks_help = any(arg in HELP_FLAGS for arg in argv)
    evaluation = bool(argv) and (argv[0].startswith("-") or argv[0] == "eval" and len(argv) > 1)
    if evaluation and not asks_help and not _names_tasks(argv):
        # lmms-eval logs "Need to specify task" and exits 0
        print("error: no --tasks given: name the tasks to run (e.g. --tasks evads)",
              file=sys.stderr)
        return 1
    if evads_tasks_requested(argv) and not asks_help:
        from .tasks.utils import preflight

        try:
            judge_protocol()  # the official protocol's script, read before any work
            preflight()
        except JudgeConfigError as error:
            print("\n".join(failure_lines(error)), file=sys.stderr)
            return 1
        except RunStopped as stopped:
            print("\n".join(stopped.lines), file=sys.stderr)
            return 1
    os.environ[PLUGINS_ENV] = with_plugin(dict(os.environ))
    from lmms_eval.cli.dispatch import main as lmms_eval_main

    sys.argv = [sys.argv[0], *argv]
    lmms_eval_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
