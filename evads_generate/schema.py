"""The structured reply of a role agent: one pydantic model, sent as the JSON schema and
used to validate what comes back.

The schema sent in ``response_format`` is generated from the same model that validates the
reply, so the two cannot drift. ``task`` and ``source`` are plain strings, not enums: one
candidate with a wrong label must be rejected on its own (with its reason), not make the
whole reply, and the other roles' good candidates in it, fail validation.

A reply that is not a valid ``Proposal`` is a counted error of one of ``REPLY_ERRORS``:
``refusal`` (prose that declines), ``truncated_json`` (JSON cut off, usually at the token
limit), ``invalid_json`` (anything else that does not parse), ``schema`` (JSON of the wrong
shape); a call that brought no reply is ``call_failed`` (a rerun asks again) or
``context_length`` (the prompt does not fit the server's context).
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError

REPLY_ERRORS = ("refusal", "truncated_json", "invalid_json", "schema", "call_failed",
                "context_length")
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
# Phrases an LLM uses to decline, in the languages we ask in; only looked for in a reply
# that is not JSON.
_REFUSAL = re.compile(
    r"\b(I(?:'m| am)? (?:sorry|unable|not able)|I can(?:no|')t|cannot (?:help|assist|comply)"
    r"|as an AI)\b|抱歉|对不起|无法(?:提供|协助|完成|回答)|不能(?:提供|协助)|申し訳",
    re.IGNORECASE)


class Evidence(BaseModel):
    """One quoted piece of the metadata a candidate rests on."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="ocr (on-screen text), asr (speech) or visual (the "
                                    "picture, only when frames were shown)")
    start_s: float = Field(description="second where the quote appears")
    end_s: float = Field(description="last second of the quote (= start_s for one second)")
    quote: str = Field(description="the exact OCR or ASR text, copied verbatim")


class Candidate(BaseModel):
    """One proposed question with its reference answer and the evidence behind it."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="BP, CM, ML, CI or RC")
    question: str
    answer: str = Field(description="the reference answer, within about 50 words")
    evidence: list[Evidence]
    modalities: list[str] = Field(description="for CM: the modalities the question ties "
                                              "together (asr, ocr, visual); else []")
    rationale: str = Field(description="why the evidence supports the answer, briefly")


class Proposal(BaseModel):
    """A role agent's whole reply: the product category and its candidates."""

    model_config = ConfigDict(extra="forbid")

    product_category: str
    candidates: list[Candidate]


# The schema a role agent's reply is asked for with (in every response_format mode).
PROPOSAL_SCHEMA = Proposal.model_json_schema()
PROPOSAL_SCHEMA_NAME = "evads_proposal"


class ReplyError(ValueError):
    """A reply that is not a valid proposal; ``kind`` is one of ``REPLY_ERRORS``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


def _strip_fence(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1) if match else text.strip()


def _unclosed(text: str) -> bool:
    """Whether JSON text stops inside a string or with brackets still open: cut off (at
    the token limit, or a dropped connection) rather than malformed."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
    return in_string or depth > 0


def parse_proposal(text: str) -> Proposal:
    """The validated proposal in a reply, or :class:`ReplyError` saying what is wrong."""
    body = _strip_fence(text or "")
    if not body:
        raise ReplyError("invalid_json", "empty reply")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        if not body.lstrip().startswith(("{", "[")):
            kind = "refusal" if _REFUSAL.search(body) else "invalid_json"
            raise ReplyError(kind, f"not JSON: {body[:160]!r}") from None
        kind = "truncated_json" if _unclosed(body) else "invalid_json"
        raise ReplyError(kind, f"{error.msg} at char {error.pos} of {len(body)}") from None
    try:
        return Proposal.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "reply"
        raise ReplyError("schema", f"{error.error_count()} error(s), first at {where}: "
                                   f"{first['msg']}") from None
