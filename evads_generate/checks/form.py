"""The cheap checks a candidate must pass before anything else: a known task that its
question fits, the requested language, a short answer, and for CM two modalities.

Task fit uses the annotation package's cue classifier, which is written for Chinese
questions: it runs only for ``zh`` and rejects a label only when another task wins by
``TASK_MARGIN`` cue points or more (on the 160 hand-labelled questions of the RL split no
correct label is that far behind).
"""

from __future__ import annotations

from evads_tasks.core.annotations import TASKS, task_code
from evads_tasks.core.annotations.task_classifier import task_scores

from ..records import CandidateRecord
from .grounding import source_of
from .language import language_check, word_count

TASK_MARGIN = 3.0
CM_SOURCES = ("asr", "ocr", "visual")


def _task(candidate: CandidateRecord) -> str | None:
    try:
        return task_code(candidate.task)
    except KeyError:
        return None


def form_check(candidate: CandidateRecord, language: str, max_answer_units: int,
               frames_shown: bool = False) -> tuple[str, str] | None:
    """The first failed rule as (code, reason), else None. Normalises ``candidate.task``.

    The picture counts as a CM modality only when the proposer was shown frames: without
    them it cannot know what is on screen beyond the OCR text.
    """
    code = _task(candidate)
    if code is None:
        return "unknown_task", f"task {candidate.task!r} is none of {', '.join(TASKS)}"
    candidate.task = code
    if not candidate.question or not candidate.answer:
        return "empty", "the question or the answer is empty"
    ok, why = language_check(f"{candidate.question} {candidate.answer}", language)
    if not ok:
        return "wrong_language", f"not in {language}: {why}"
    if (length := word_count(candidate.answer)) > max_answer_units:
        return "answer_too_long", f"answer has {length} words, the limit is {max_answer_units}"
    if language.lower().startswith("zh"):
        scores = task_scores(candidate.question)
        best = max(scores, key=scores.get)
        if best != code and scores[best] - scores[code] >= TASK_MARGIN:
            return "task_mismatch", (f"labelled {code} but the question asks a {best} "
                                     f"({TASKS[best].name}) question")
    if code == "CM":
        usable = set(CM_SOURCES) if frames_shown else set(CM_SOURCES) - {"visual"}
        named = {source_of(m) for m in candidate.modalities} & usable
        cited = {source_of(str(e.get("source", ""))) for e in candidate.evidence} & usable
        if len(named | cited) < 2:
            return "cm_modalities", ("a CM question must tie two modalities; it names "
                                     f"{sorted(named) or 'none'} and cites "
                                     f"{sorted(cited) or 'none'}")
        if missing := sorted(named - cited - {"visual"}):
            return "cm_modalities", f"names {', '.join(missing)} but cites no evidence from it"
    return None
