"""Answerability: an independent LLM call answers the question from the metadata alone, and
the project's judge scores that answer against the candidate's reference.

A question the metadata cannot settle, or whose reference the metadata contradicts, scores
low and is rejected; the score is kept either way. The judge sees exactly what it sees when
it scores a model on the benchmark (question, metadata, clues, reference), so the check asks
"would a careful reader of the ad get this right?". A failed call or judge gives ``ok``
None with its ``error_kind``: ``call_failed`` leaves the candidate undecided this run (a
rerun asks again), ``context_length`` (a prompt the server's context cannot hold) rejects it.
"""

from __future__ import annotations

from evads_tasks.core.chat.server_fit import OVERFLOW_REASON
from evads_tasks.core.judge import JudgeRequest
from evads_tasks.core.responses import judged_text

from ..llm import CALL_FAILED, CONTEXT_LENGTH, LLM
from ..prompts import answerer_messages
from ..records import CandidateRecord, VideoMeta
from ..settings import GeneratorSettings


def answer_and_score(llm: LLM, kind: str, messages: list[dict], meta: VideoMeta,
                     candidate: CandidateRecord, max_tokens: int) -> dict:
    """Ask for an answer (temperature 0) and have the judge score it against the reference.

    Only the final answer is judged: a ``<think>`` block of a reasoning model is dropped.
    """
    reply = llm.ask(kind, messages, temperature=0, max_tokens=max_tokens)
    if reply.error is not None:
        return {"ok": None, "error": reply.error, "error_kind": reply.error_kind}
    answer = judged_text(reply.content)
    verdict = llm.score(JudgeRequest(question=candidate.question, metadata=meta.metadata,
                                     clues=candidate.clues(), reference=candidate.answer,
                                     answer=answer))
    outcome = {"answer": answer, "score": verdict.score, "judge": verdict.judge,
               "judge_raw": verdict.raw}
    if verdict.score is None:
        overflow = OVERFLOW_REASON in (verdict.error or "")
        outcome.update(ok=None, error=verdict.error,
                       error_kind=CONTEXT_LENGTH if overflow else CALL_FAILED)
    return outcome


def answerability(llm: LLM, meta: VideoMeta, candidate: CandidateRecord,
                  settings: GeneratorSettings) -> dict:
    """``ok`` when the metadata-only answer scores at least the answerable threshold."""
    outcome = answer_and_score(
        llm, "answer", answerer_messages(meta.metadata, candidate.question, settings.language),
        meta, candidate, settings.answer_max_tokens)
    if outcome.get("score") is not None:
        outcome["ok"] = outcome["score"] >= settings.answerable_threshold
        outcome["detail"] = (f"metadata-only answer scored {outcome['score']:g} "
                             f"(threshold {settings.answerable_threshold:g})")
    return outcome
