"""Everything that reads a finished run: its scores and provenance (``scored_runs``), the
Markdown + PNG report (``report``), rescore without the model (``rescore``), two runs side
by side (``compare``, with ``paired_comparison``, the one paired comparison). Judge agreement
figures live in ``evads_tasks.core.agreement`` (the judge canary uses them too).

May import ``evads_tasks.core``, ``evads_tasks.tasks`` (the tasks' own judging and
aggregations, so a rescored run means what a live one means) and ``evads_tasks.sample``.
"""
