"""The blind check: a question that can be answered without the video tests nothing.

The LLM answers from the question alone (no frames, no metadata) and the judge scores that
guess exactly as it would score a model on the benchmark; a guess scoring at least the blind
threshold means general knowledge or the question's own wording gives the answer away: the
question is answerable without the video, by the definition the modality audit's filter and
the trainers' ``--exclude`` share (:mod:`evads_tasks.core.without_video`).
"""

from __future__ import annotations

from evads_tasks.core.without_video import answerable_without_video

from ..llm import LLM
from ..prompts import blind_messages
from ..records import CandidateRecord, VideoMeta
from ..settings import GeneratorSettings
from .answerability import answer_and_score


def blind(llm: LLM, meta: VideoMeta, candidate: CandidateRecord,
          settings: GeneratorSettings) -> dict:
    """``ok`` when the blind guess scores below the blind threshold."""
    outcome = answer_and_score(llm, "blind", blind_messages(candidate.question,
                                                            settings.language),
                               meta, candidate, settings.answer_max_tokens)
    if outcome.get("score") is not None:
        outcome["ok"] = not answerable_without_video(outcome["score"], settings.blind_threshold)
        outcome["detail"] = (f"answer without the video scored {outcome['score']:g} "
                             f"(rejected from {settings.blind_threshold:g})")
    return outcome
