"""MG-GRPO reward arithmetic: pure functions, no judge and no trainer.

The reward of one completion is

    R = accuracy_ratio * (w_a * G(x_a) + w_t * G(x_t)) + format_ratio * w_f * R_fmt

with G the multi-grained score of :mod:`evads_tasks.core.scoring`, x_a the judge's
score of the ``<answer>`` text, x_t its score of the ``<think>`` trace, and
R_fmt 1 when the completion has the required form. Our reading of the RL rows'
``accuracy_ratio`` and ``format_ratio`` (the public material does not define
them): they are per-row multipliers, the first on both judged terms, the second
on the format term; with the released value 1 they leave the paper's
0.8 / 0.2 / 1 reward unchanged.

What is judged follows the official evaluation: the text inside ``<answer>`` when
the completion has a complete answer block, else the whole completion with its
``<think>`` block and stray tags removed (so an untagged answer can still earn the
answer term, but always loses the format term, which outweighs it). The trace is the
``<think>`` block only. A term with nothing to judge (empty completion, no think
block) or whose judge call failed contributes 0 (see :func:`reward_parts`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evads_tasks.core.responses import answer_part
from evads_tasks.core.scoring import mg_score

_THINK = re.compile(r"<think>(.*?)</think>", re.S)
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_FORMAT = re.compile(r"\s*<think>(.+?)</think>\s*<answer>(.+?)</answer>\s*", re.S)


@dataclass(frozen=True)
class RewardWeights:
    """w_a, w_t, w_f of the MG-GRPO reward (the paper's defaults)."""

    answer: float = 0.8
    trace: float = 0.2
    format: float = 1.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, float] | None) -> RewardWeights:
        values = dict(values or {})
        unknown = set(values) - {"answer", "trace", "format"}
        if unknown:
            raise ValueError(f"unknown reward weight(s) {sorted(unknown)}; "
                             "use answer, trace and format")
        return cls(**{key: float(value) for key, value in values.items()})

    def as_list(self) -> list[float]:
        """In the order of the reward functions handed to TRL: answer, trace, format."""
        return [self.answer, self.trace, self.format]


DEFAULT_WEIGHTS = RewardWeights()


@dataclass(frozen=True)
class ParsedCompletion:
    """The parts of a completion the reward looks at."""

    think: str | None  # text of the first <think> block; None when absent or empty
    # what the answer judge sees (see evads_tasks.core.responses); None when empty
    answer: str | None
    answer_tagged: bool  # the answer came from a complete <answer> block
    format_ok: bool


def completion_text(completion: str | Sequence[Mapping]) -> str:
    """The generated text, whether TRL passes a string or chat messages (VLM completions).

    Message content may itself be a string or a list of ``{"type": "text", ...}`` parts.
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    pieces = []
    for message in completion:
        content = message.get("content") if isinstance(message, Mapping) else message
        if isinstance(content, str):
            pieces.append(content)
        elif isinstance(content, Sequence):
            pieces.extend(part.get("text") or "" for part in content
                          if isinstance(part, Mapping) and part.get("type", "text") == "text")
    return "".join(pieces)


def _first(pattern: re.Pattern, text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1).strip() or None if match else None


def is_well_formed(text: str) -> bool:
    """``<think>..</think> <answer>..</answer>``: exactly one of each tag, in that order,
    both non-empty, nothing but whitespace around them."""
    if any(text.count(tag) != 1 for tag in _TAGS):
        return False
    match = _FORMAT.fullmatch(text)
    return bool(match and match.group(1).strip() and match.group(2).strip())


def parse_completion(completion: str | Sequence[Mapping]) -> ParsedCompletion:
    text = completion_text(completion)
    answer, tagged = answer_part(text)
    return ParsedCompletion(think=_first(_THINK, text), answer=answer, answer_tagged=tagged,
                            format_ok=is_well_formed(text))


def format_reward_value(completion: str | Sequence[Mapping]) -> float:
    """R_fmt: 1.0 for a well-formed completion, else 0.0."""
    return 1.0 if is_well_formed(completion_text(completion)) else 0.0


def judged_g(score: float | None) -> float:
    """G of a judge score; a missing score (not judged, or judge error) counts 0."""
    return 0.0 if score is None else mg_score(score)


@dataclass(frozen=True)
class RewardParts:
    """Every term of one completion's reward, already scaled by the row's ratios."""

    answer: float  # accuracy_ratio * G(x_a)
    trace: float  # accuracy_ratio * G(x_t)
    format: float  # format_ratio * R_fmt
    total: float  # weighted sum


def reward_parts(answer_score: float | None, trace_score: float | None, format_ok: bool,
                 weights: RewardWeights = DEFAULT_WEIGHTS, accuracy_ratio: float = 1.0,
                 format_ratio: float = 1.0) -> RewardParts:
    """The MG-GRPO reward of one completion from its judge scores and format check.

    ``None`` for a score means the term could not be judged (nothing to judge, or the
    judge failed): that term is 0. A malformed completion still earns the judged terms;
    it loses R_fmt.
    """
    answer = float(accuracy_ratio) * judged_g(answer_score)
    trace = float(accuracy_ratio) * judged_g(trace_score)
    fmt = float(format_ratio) * (1.0 if format_ok else 0.0)
    total = weights.answer * answer + weights.trace * trace + weights.format * fmt
    return RewardParts(answer=answer, trace=trace, format=fmt, total=total)
