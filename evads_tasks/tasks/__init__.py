"""The lmms-eval include path of E-VAds: task YAMLs, the task table and their functions
(``utils.py``: data, prompts, judging; ``metrics.py``: per-sample values and aggregations),
and the tasks under each modality condition (``textonly/``, ``blind/``, ``videoonly/``,
``oneframe/``: ``conditions.py`` over the generic ``ablation.py``).

May import ``evads_tasks.core`` and lmms-eval; never ``runs``, the generator or ``evads_rl``.
"""

from pathlib import Path

INCLUDE_PATH = Path(__file__).resolve().parent
