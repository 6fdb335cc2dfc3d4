"""Clustered standard errors and 95% intervals in lmms-eval's own results, task and group rows.

Why: lmms-eval 0.7.3 fills a metric's ``_stderr`` slot (its table's Stderr column) only for
its own aggregation functions (``stderr_for_metric``); for ours it writes N/A. Its group rows
pool the subtasks' stderrs as if the tasks were independent (``pooled_sample_stderr``), but a
video's questions sit in several tasks (one per task in E-VAds). Its ``_stderr_clustered``
(task rows only) has no small-sample correction. So :func:`install` wraps two functions that
lmms-eval's ``evaluate`` looks up in its module on each call:

- ``consolidate_results``: keeps, per E-VAds task and mean, the values behind it (each
  sample's ``score``) and their videos (the template YAML's ``cluster_key``);
- ``consolidate_group_results``: then writes each task row's CR1 standard error clustered by
  video, and each group row's (the size-weighted mean of its tasks' means, as lmms-eval
  computes it) clustered by video across all its tasks, into ``_stderr`` and
  ``_stderr_clustered``, with ``<metric>_ci95`` = [low, high] beside (``metrics.interval_cells``).

The statistics are :mod:`evads_tasks.core.statistics`, as the run report's, so the table, the
results JSON and the report give one interval for a mean. A group that mixes E-VAds tasks with
others, or weights them otherwise, keeps lmms-eval's own figures.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence

from evads_tasks.core.statistics import Stratum, weighted_mean_of_means
from evads_tasks.tasks.metrics import INTERVAL_METRICS, SCORE_KEY, VIDEO_KEY, interval_cells

logger = logging.getLogger(__name__)

_WRAPPED = "__evads_intervals__"
# Per task name, per (metric, filter): the values behind its mean, from the last
# consolidate_results (one evaluation at a time: lmms-eval runs a --config's one by one).
_strata: dict[str, dict[tuple[str, str], Stratum]] = {}


def task_stratum(items: Sequence[object], cluster_key: str = VIDEO_KEY) -> Stratum:
    """The values behind a task's mean: the scored samples' values and videos, weighted by
    the task's size (every sample, scored or not: lmms-eval's ``samples``)."""
    scored = [x for x in items if isinstance(x, Mapping) and x.get(SCORE_KEY) is not None]
    missing = [x for x in scored if x.get(cluster_key) is None]
    if missing:
        raise ValueError(f"a sample value has no {cluster_key!r} to cluster by: {missing[0]}")
    return Stratum([float(x[SCORE_KEY]) for x in scored], [x[cluster_key] for x in scored],
                   len(items))


def install() -> None:
    """Wrap lmms-eval's two consolidation steps (once per process; later calls do nothing).
    Called when an E-VAds task is built, so any way of starting lmms-eval gets it."""
    import lmms_eval.evaluator as evaluator

    if getattr(evaluator.consolidate_results, _WRAPPED, False):
        return
    evaluator.consolidate_results = _keeping_strata(evaluator.consolidate_results)
    evaluator.consolidate_group_results = _with_intervals(evaluator.consolidate_group_results)


def _keeping_strata(consolidate: Callable) -> Callable:
    def consolidate_results(eval_tasks, *args, **kwargs):
        out = consolidate(eval_tasks, *args, **kwargs)
        _strata.clear()
        for task_output in eval_tasks:
            config = task_output.task_config or {}
            key = config.get("cluster_key") or VIDEO_KEY
            for (metric, filter_key), items in task_output.sample_metrics.items():
                if metric in INTERVAL_METRICS:
                    _strata.setdefault(task_output.task_name, {})[(metric, filter_key)] = \
                        task_stratum(items, key)
        return out

    setattr(consolidate_results, _WRAPPED, True)
    return consolidate_results


def _with_intervals(consolidate: Callable) -> Callable:
    def consolidate_group_results(results, versions, task_dict, *args, **kwargs):
        out = consolidate(results, versions, task_dict, *args, **kwargs)
        write_intervals(out[0], out[-1] or {})
        return out

    setattr(consolidate_group_results, _WRAPPED, True)
    return consolidate_group_results


def write_intervals(results: dict, members: Mapping[str, Sequence[str]]) -> None:
    """Each E-VAds task row's and group row's stderr slots and 95% interval, in place.
    ``members``: each group's tasks (lmms-eval's task_aggregation_list)."""
    for task, strata in _strata.items():
        for (metric, filter_key), stratum in strata.items():
            if task in results:
                results[task].update(interval_cells(
                    metric, weighted_mean_of_means([stratum]), filter_key))
    for group, tasks in members.items():
        if group not in results or not tasks or any(t not in _strata for t in tasks):
            continue
        for metric, filter_key in _strata[tasks[0]]:
            value = results[group].get(f"{metric},{filter_key}")
            if not isinstance(value, (int, float)):
                continue
            interval = weighted_mean_of_means([_strata[t][(metric, filter_key)] for t in tasks])
            if math.isnan(interval.mean) != math.isnan(value) or (
                    not math.isnan(value) and abs(interval.mean - value) > 1e-9):
                logger.warning("%s: %s is %s, not the size-weighted mean of its tasks (%s): "
                               "its stderr is lmms-eval's, not clustered by video", group,
                               metric, value, interval.mean)
                continue
            results[group].update(interval_cells(metric, interval, filter_key))
