"""What lmms-eval's ``LMMS_EVAL_PLUGINS=evads_tasks`` asks of a plugin.

lmms-eval 0.7.3 imports ``<plugin>.models`` (its ``AVAILABLE_MODELS``) when it builds its model
registry, and adds ``<plugin>.tasks`` to the include path only after the task index was
built, so ``--tasks evads`` would not be found. E-VAds ships no model classes (any lmms-eval
video model runs it); importing this module adds the E-VAds task folder to every task index
lmms-eval builds in this process, which is what the plugin variable asks for. When every
``--tasks`` name is an E-VAds one, lmms-eval's own ~3,240 task YAMLs are left out of the
index (parsing them costs seconds on every run); name any other task and they are indexed.
"""

from __future__ import annotations

import sys

from lmms_eval.tasks import TaskManager

from evads_tasks.tasks import task_names, with_evads

AVAILABLE_MODELS: dict[str, str] = {}
_index_tasks = TaskManager.initialize_tasks


def only_evads_tasks(argv: list[str]) -> bool:
    """Whether the command line's ``--tasks`` names E-VAds tasks and groups only."""
    names = task_names(argv)
    return bool(names) and all(name.startswith("evads") for name in names)


def _index_with_evads(self: TaskManager, include_path: str | list[str] | None = None,
                      include_defaults: bool = True) -> dict:
    paths = [include_path] if isinstance(include_path, str) else list(include_path or [])
    return _index_tasks(self, with_evads(paths),
                        include_defaults and not only_evads_tasks(sys.argv[1:]))


TaskManager.initialize_tasks = _index_with_evads
