"""The lmms-eval include path of E-VAds: task YAMLs, the task table and their functions
(``utils.py``: data, prompts, judging; ``metrics.py``: per-sample values and aggregations),
and the tasks under each modality condition (``textonly/``, ``blind/``, ``videoonly/``,
``oneframe/``: ``conditions.py`` over the generic ``ablation.py``).

May import ``evads_tasks.core`` and lmms-eval; never ``runs``, the generator or ``evads_rl``.
"""

from pathlib import Path

INCLUDE_PATH = Path(__file__).resolve().parent


def with_evads(paths: list) -> list[str]:
    """Include paths as lmms-eval takes them: the user's (kept, first) plus ours."""
    paths = [str(path) for path in paths]
    return paths if str(INCLUDE_PATH) in paths else [*paths, str(INCLUDE_PATH)]


def flag_values(argv: list[str], flag: str) -> list[str]:
    """Every value of ``flag`` (``--flag X`` or ``--flag=X``) in an lmms-eval command line,
    in order."""
    values = []
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            values.append(argv[index + 1])
        elif arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1])
    return values


def task_names(argv: list[str]) -> list[str]:
    """The task and group names an lmms-eval command line's ``--tasks`` gives."""
    return [name.strip() for value in flag_values(argv, "--tasks")
            for name in value.split(",") if name.strip()]
