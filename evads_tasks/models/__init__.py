"""What lmms-eval's ``LMMS_EVAL_PLUGINS=evads_tasks`` asks of a plugin.

lmms-eval 0.7.3 imports ``<plugin>.models`` (its ``AVAILABLE_MODELS``) when it builds its model
registry, and adds ``<plugin>.tasks`` to the include path only after the task index was
built, so ``--tasks evads`` would not be found. E-VAds ships no model classes (any lmms-eval
video model runs it); importing this module adds the E-VAds task folder to every task index
lmms-eval builds in this process, which is what the plugin variable asks for.
"""

from __future__ import annotations

from lmms_eval.tasks import TaskManager

from evads_tasks.tasks import INCLUDE_PATH

AVAILABLE_MODELS: dict[str, str] = {}
_index_tasks = TaskManager.initialize_tasks


def _index_with_evads(self: TaskManager, include_path: str | list[str] | None = None,
                      include_defaults: bool = True) -> dict:
    paths = [include_path] if isinstance(include_path, str) else list(include_path or [])
    if str(INCLUDE_PATH) not in map(str, paths):
        paths.append(str(INCLUDE_PATH))
    return _index_tasks(self, paths, include_defaults)


TaskManager.initialize_tasks = _index_with_evads
