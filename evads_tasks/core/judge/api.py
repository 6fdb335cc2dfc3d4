"""The judge API every part of evads codes against: request, result and the Judge protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

RUBRICS: tuple[str, ...] = ("answer", "trace")


@dataclass(frozen=True)
class JudgeRequest:
    """What the judge sees: the official inputs (question, OCR/ASR metadata, clues, reference).

    ``rubric="answer"`` grades ``answer`` against the reference with the official five-level
    rubric; ``rubric="trace"`` grades a ``<think>`` trace (passed as ``answer``) for evidence
    grounding against the clues and the metadata. Callers pass only the text to be judged
    (the ``<answer>`` part of a response for the answer rubric).
    """

    question: str
    metadata: str
    clues: str
    reference: str
    answer: str
    rubric: str = "answer"

    def __post_init__(self) -> None:
        if self.rubric not in RUBRICS:
            raise ValueError(f"JudgeRequest.rubric must be one of {RUBRICS}, got {self.rubric!r}")
        for name in ("question", "metadata", "clues", "reference", "answer"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"JudgeRequest.{name} must be str, got "
                                f"{type(getattr(self, name)).__name__}")


@dataclass(frozen=True)
class JudgeResult:
    """One verdict. ``score`` is None exactly when the judge failed; ``error`` then says why.

    Accounting (:mod:`evads_tasks.core.judge.accounting`), from an LLM judge only: the token
    usage of the replies behind the verdict (summed over its tries; a cached verdict keeps
    the usage it was paid with), the model name the server reported and the HTTP calls made
    for it now (0 for a cache hit). None where the server or judge gives none.
    """

    score: float | None
    raw: str | None
    error: str | None
    cached: bool
    judge: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    served_model: str | None = None
    calls: int = 0


# An empty answer (or trace) is rubric level 0, "does not answer": every judge scores it 0
# by this rule without calling a model, so the rule is the same for evaluation and RL.
NO_ANSWER = "no answer: scored 0 by rule, without a judge call (level 0: does not answer)"


def no_answer_result(judge: str) -> JudgeResult:
    """The rule's verdict for an empty or blank answer: score 0, no model call."""
    return JudgeResult(score=0.0, raw=NO_ANSWER, error=None, cached=False, judge=judge)


@runtime_checkable
class Judge(Protocol):
    name: str

    def settings(self) -> dict:
        """How this judge judges, as results record it: at least ``judge`` (its name) and
        ``protocol`` (``{"name": ...}``), plus model and call parameters where it has them."""
        ...

    def judge(self, request: JudgeRequest) -> JudgeResult:
        """Thread-safe: lmms-eval calls process_results from several threads. An empty
        answer gets :func:`no_answer_result` (score 0, no model call)."""
        ...

    def judge_many(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        """Concurrent and bounded; results in the order of ``requests``."""
        ...


class JudgeConfigError(RuntimeError):
    """The environment does not describe a usable judge; the message says how to set one."""
