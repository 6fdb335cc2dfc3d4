"""A role agent at work: one proposal call for one video, its reply validated and unpacked.

A reply that fails (transport, context length, refusal, broken or truncated JSON, wrong
shape) is logged with its kind and raw text and yields no candidate; the other roles carry
on. The reply is asked for with the schema in the ``response_format`` mode the server
accepts (``LLM.ask_structured``); the validation is the same in every mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from .llm import LLM
from .prompts import proposer_messages
from .records import CandidateRecord, VideoMeta
from .roles import Role
from .schema import PROPOSAL_SCHEMA, PROPOSAL_SCHEMA_NAME, ReplyError, parse_proposal
from .settings import GeneratorSettings


@dataclass(frozen=True)
class Proposed:
    """What one role call gave: the reply's log entry, its candidates, its category guess."""

    log: dict
    candidates: list[CandidateRecord]
    category: str | None


def propose(llm: LLM, role: Role, meta: VideoMeta, tasks: list[str], round_: int,
            settings: GeneratorSettings, frame_urls: list[str] | None = None,
            max_attempts: int | None = None) -> Proposed:
    """One role's proposal call (``max_attempts``: 1 for the timing preflight)."""
    messages = proposer_messages(role, meta.metadata, tasks, language=settings.language,
                                 per_task=settings.candidates_per_task,
                                 max_answer_units=settings.max_answer_units,
                                 frame_urls=frame_urls)
    reply = llm.ask_structured("propose", messages, PROPOSAL_SCHEMA, PROPOSAL_SCHEMA_NAME,
                               max_attempts=max_attempts,
                               temperature=settings.propose_temperature,
                               max_tokens=settings.propose_max_tokens)
    reply_id = f"{meta.video_id}/r{round_}/{role.name}"
    log = {"id": reply_id, "video_id": meta.video_id, "role": role.name, "round": round_,
           "tasks": tasks, "cached": reply.cached, "raw": reply.content,
           "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
           "ok": False, "error_kind": None, "error": None, "candidates": 0}
    if reply.error is not None:
        log.update(error_kind=reply.error_kind, error=reply.error)
        return Proposed(log, [], None)
    try:
        proposal = parse_proposal(reply.content or "")
    except ReplyError as error:
        log.update(error_kind=error.kind, error=error.detail)
        return Proposed(log, [], None)
    candidates = [
        CandidateRecord(
            id=f"{reply_id}/{index}", video_id=meta.video_id, role=role.name, round=round_,
            task=c.task.strip().upper(), question=c.question.strip(), answer=c.answer.strip(),
            evidence=[e.model_dump() for e in c.evidence],
            modalities=[m.strip().lower() for m in c.modalities], rationale=c.rationale.strip(),
            reply_id=reply_id)
        for index, c in enumerate(proposal.candidates)]
    log.update(ok=True, candidates=len(candidates))
    return Proposed(log, candidates, proposal.product_category)
