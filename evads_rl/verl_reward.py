"""The MG-GRPO reward as a verl custom reward function, fed by the E-VAds RL parquet as it is.

verl passes ``data_source``, the decoded ``solution_str``, the row's
``reward_model.ground_truth`` (``<answer>..</answer>``) and its ``extra_info``, which in
the released RL split holds only ``id`` and ``video_path``. The question, clues,
metadata and reward ratios are therefore looked up by id in the annotation file named
by ``$EVADS_ANNOTATIONS`` (loaded once per process); inline ``question``, ``clues`` and
``meta_info`` keys in ``extra_info`` take precedence. The judge comes from the
environment (``evads_tasks.core.judge.judge_from_env``) and the weights from
``$EVADS_REWARD_WEIGHTS`` (``answer=0.8,trace=0.2,format=1``). Rows written by
``python -m evads_rl verl-data`` carry question, clues and metadata inline.

The judge's name is printed and logged once per process when the scorer is built, not
put in the result dicts: verl aggregates every ``reward_extra_info`` value as a number
(mean/std in validation), so a string there would break it.

Use ``compute_score`` with verl's naive reward manager, or ``compute_score_batch`` with
its batch manager (one concurrent judge call per batch). See ``configs/verl_grpo.sh``.

A failed judgement gives its term no credit (0) and is counted in the dict
(``judge_errors`` of ``judge_requests``). A dead judge stops the run: when the judge failed
on at least ``$EVADS_JUDGE_STOP_RATE`` (default 1.0) of the requests of the last
``$EVADS_JUDGE_STOP_BATCHES`` (default 2) calls, the call raises
``evads_rl.judge_guard.JudgeFailureError``, which ends the verl job (resume it from its last
``trainer.save_freq`` checkpoint once the judge is back). With the naive manager a call is
one sample: raise ``EVADS_JUDGE_STOP_BATCHES`` to look at more of them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache

from evads_rl.judge_guard import JudgeErrorWindow, JudgeStopRule
from evads_rl.judging import JudgeContext, MGJudgeScorer, ScoredCompletion
from evads_rl.rewards import RewardWeights
from evads_tasks.core.annotations import (
    ANNOTATIONS_ENV,
    AnnotationError,
    EvadsRecord,
    load_annotations,
)
from evads_tasks.core.responses import judged_text

WEIGHTS_ENV = "EVADS_REWARD_WEIGHTS"
log = logging.getLogger(__name__)
_lock = threading.Lock()


@lru_cache(maxsize=4)
def _records_by_id(source: str) -> dict[str, EvadsRecord]:
    return {record.question_id: record for record in load_annotations(source)}


def weights_from_env() -> RewardWeights:
    raw = os.environ.get(WEIGHTS_ENV, "").strip()
    if not raw:
        return RewardWeights()
    try:
        pairs = dict(item.split("=", 1) for item in raw.split(","))
    except ValueError:
        raise ValueError(f"{WEIGHTS_ENV}={raw!r}: expected answer=0.8,trace=0.2,format=1") from None
    return RewardWeights.from_mapping({k.strip(): float(v) for k, v in pairs.items()})


_scorer: MGJudgeScorer | None = None


def scorer() -> MGJudgeScorer:
    """The process-wide scorer: judge from the environment, weights from $EVADS_REWARD_WEIGHTS."""
    global _scorer
    with _lock:
        if _scorer is None:
            from evads_tasks.core.judge import judge_from_env

            _scorer = MGJudgeScorer(judge_from_env(), weights_from_env(),
                                    JudgeErrorWindow(JudgeStopRule.from_env()))
            message = (f"[evads verl reward] judge: {_scorer.judge.name}; reward weights "
                       f"{_scorer.weights.as_list()} (answer, trace, format)")
            print(message, flush=True)
            log.info(message)
        return _scorer


def row_context(ground_truth: str, extra_info: Mapping | None) -> tuple[JudgeContext, float, float]:
    """Judge context and (accuracy_ratio, format_ratio) of one verl row."""
    extra = dict(extra_info or {})
    inline = {key: extra[key] for key in ("question", "clues", "meta_info") if key in extra}
    record = None
    if len(inline) < 3:
        source = os.environ.get(ANNOTATIONS_ENV)
        if not source:
            raise AnnotationError(
                f"verl row {extra.get('id')!r} has no inline question/clues/meta_info: set "
                f"{ANNOTATIONS_ENV} to the annotation file to look them up by id",
                field="extra_info")
        record = _records_by_id(source).get(str(extra.get("id")))
        if record is None:
            raise AnnotationError(f"question id {extra.get('id')!r} not found", file=source,
                                  field="extra_info.id")
    context = JudgeContext(
        question=str(inline.get("question", record.question if record else "")),
        metadata=str(inline.get("meta_info", record.metadata_text() if record else "")),
        clues=str(inline.get("clues", record.clues if record else "")),
        reference=judged_text(ground_truth))  # the text inside <answer>..</answer>
    ratios = record.extra if record else extra
    return (context, float(ratios.get("accuracy_ratio", 1)),
            float(ratios.get("format_ratio", 1)))


def _as_dict(scored: ScoredCompletion) -> dict:
    judged = [r for r in (scored.answer, scored.trace) if r is not None]
    return {"score": scored.parts.total, "answer_g": scored.parts.answer,
            "trace_g": scored.parts.trace, "format": scored.parts.format,
            "judge_errors": sum(r.score is None for r in judged),
            "judge_requests": len(judged)}


def compute_score_batch(data_sources: Sequence[str], solution_strs: Sequence[str],
                        ground_truths: Sequence[str], extra_infos: Sequence[Mapping | None],
                        **kwargs) -> list[dict]:
    """verl batch reward manager entry: the whole batch is judged in one concurrent call.

    Raises JudgeFailureError when the judge is dead (see the module's docstring)."""
    rows = [row_context(gt, extra) for gt, extra in zip(ground_truths, extra_infos, strict=True)]
    scored = scorer().score(solution_strs, [r[0] for r in rows], [r[1] for r in rows],
                            [r[2] for r in rows])
    return [_as_dict(item) for item in scored]


def compute_score(data_source: str, solution_str: str, ground_truth: str,
                  extra_info: Mapping | None = None, **kwargs) -> dict:
    """verl custom reward entry: ``score`` (the MG-GRPO reward) and its parts."""
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info])[0]
