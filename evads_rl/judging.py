"""MG-GRPO rewards as TRL reward functions, scored by the judge.

TRL calls each reward function with the whole batch of completions (every
group of a step) and every dataset column as keyword arguments. The answer and
trace terms need the judge: the first of the three functions to run judges the
batch in ONE ``judge_many`` call (answer and trace requests together, so a
group of 8 costs about one judge latency), and the other reads that batch's
verdicts. Verdicts live for the current batch only: a judge error is retried when
the same text comes up in a later batch (the HTTP judge's on-disk cache keeps the
successful verdicts across steps and runs).

Policy for what cannot be judged (logged, never raised):
- empty completion (or an empty ``<answer>`` block) -> answer term 0, not sent to the judge;
- no ``<answer>`` block -> the completion minus its ``<think>`` block is judged as the
  answer (the official evaluation's rule), and the format term is 0;
- ``<think>`` missing/empty -> trace term 0, not sent;
- judge error (``JudgeResult.score is None``) -> that term 0 (no judge-based credit),
  counted in ``judge_errors`` and logged with the judge's reason; when the judge fails on
  too many requests of the last reward batches, :mod:`evads_rl.judge_guard` stops training
  (``JudgeFailureError``) rather than let the reward become the format term alone;
- any tag problem fails the format check -> format term 0.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from evads_tasks.core.judge import Judge, JudgeRequest, JudgeResult
from evads_tasks.core.scoring import LEVELS

from .judge_guard import JudgeErrorWindow
from .rewards import (
    DEFAULT_WEIGHTS,
    ParsedCompletion,
    RewardParts,
    RewardWeights,
    completion_text,
    format_reward_value,
    parse_completion,
    reward_parts,
)

log = logging.getLogger(__name__)

# Dataset columns the reward functions read (written by evads_rl.data).
CONTEXT_COLUMNS = ("question", "metadata", "clues", "reference")
JUDGE_MODES = ("env", "similarity")  # the run config's ``judge``


def make_judge(mode: str = "env", cache_dir: str | os.PathLike | None = None):
    """The judge ``judge_from_env`` decides (the one place that does); the config's
    ``judge: similarity`` is its fallback, used only when the environment configures none;
    ``env``: no fallback."""
    if mode not in JUDGE_MODES:
        raise ValueError(f"judge must be 'env' or 'similarity', got {mode!r}")
    from evads_tasks.core.judge import judge_from_env

    return judge_from_env(cache_dir, fallback="similarity" if mode == "similarity" else None)


def _as_level(result: JudgeResult) -> JudgeResult:
    """A verdict off the five levels (the official protocol's parse rule reads any number)
    earns no reward: it becomes a judge error."""
    if result.score is None or result.score in LEVELS:
        return result
    return dataclasses.replace(result, score=None, error=(
        f"judge score {result.score} is not one of the levels {LEVELS}: no reward"))


@dataclass(frozen=True)
class JudgeContext:
    """What the judge needs besides the completion: one dataset row's official inputs."""

    question: str
    metadata: str
    clues: str
    reference: str


@dataclass(frozen=True)
class ScoredCompletion:
    parsed: ParsedCompletion
    answer: JudgeResult | None  # None when not sent to the judge (tag missing or empty)
    trace: JudgeResult | None
    parts: RewardParts


@dataclass
class JudgeStats:
    """Running counts, for the logs; ``batch_error_rate`` is the last reward batch's."""

    requests: int = 0
    errors: int = 0
    batch_error_rate: float = 0.0


def _same_counts(requests: int, errors: int) -> tuple[int, int]:
    return requests, errors


def _request(context: JudgeContext, rubric: str, text: str | None) -> JudgeRequest | None:
    if text is None:
        return None
    return JudgeRequest(question=context.question, metadata=context.metadata,
                        clues=context.clues, reference=context.reference, answer=text,
                        rubric=rubric)


def _score(result: JudgeResult | None) -> float | None:
    return None if result is None else result.score


class MGJudgeScorer:
    """Scores completions with the MG-GRPO reward through one judge (thread-safe judge assumed)."""

    def __init__(self, judge: Judge, weights: RewardWeights = DEFAULT_WEIGHTS,
                 guard: JudgeErrorWindow | None = None,
                 reduce: Callable[[int, int], tuple[int, int]] = _same_counts) -> None:
        """``guard`` stops on a dead judge; ``reduce`` sums a batch's (requests, errors)
        over the training processes, so that every process takes the same decision."""
        self.judge, self.weights = judge, weights
        self.guard, self.reduce = guard, reduce
        self.stats = JudgeStats()

    def verdicts(self, items: Sequence[tuple[JudgeContext, ParsedCompletion]]
                 ) -> list[tuple[JudgeResult | None, JudgeResult | None]]:
        """(answer, trace) verdicts for each item: the distinct requests of the batch go to
        the judge in one concurrent ``judge_many`` call; nothing is kept after it."""
        pairs = [(_request(c, "answer", p.answer), _request(c, "trace", p.think))
                 for c, p in items]
        wanted = list(dict.fromkeys(r for pair in pairs for r in pair if r is not None))
        found: dict[JudgeRequest, JudgeResult] = {}
        errors, last_error = 0, None
        if wanted:
            results = self.judge.judge_many(wanted)
            for request, result in zip(wanted, results, strict=True):
                result = _as_level(result)
                if result.score is None:
                    errors, last_error = errors + 1, result.error
                    log.warning("judge error (%s rubric) scored as 0: %s", request.rubric,
                                result.error)
                found[request] = result
        self.stats.requests += len(wanted)
        self.stats.errors += errors
        sent, failed = self.reduce(len(wanted), errors)
        self.stats.batch_error_rate = failed / sent if sent else 0.0
        if self.guard is not None:
            self.guard.add_batch(sent, failed, last_error)
        return [(found.get(a) if a else None, found.get(t) if t else None) for a, t in pairs]

    def score(self, completions: Sequence, contexts: Sequence[JudgeContext],
              accuracy_ratio: Sequence[float] | None = None,
              format_ratio: Sequence[float] | None = None) -> list[ScoredCompletion]:
        """Every reward part of each completion (one judge round trip for the whole batch)."""
        parsed = [parse_completion(c) for c in completions]
        verdicts = self.verdicts(list(zip(contexts, parsed, strict=True)))
        n = len(parsed)
        acc = list(accuracy_ratio) if accuracy_ratio is not None else [1.0] * n
        fmt = list(format_ratio) if format_ratio is not None else [1.0] * n
        return [
            ScoredCompletion(p, a, t, reward_parts(_score(a), _score(t), p.format_ok,
                                                   self.weights, acc[i], fmt[i]))
            for i, (p, (a, t)) in enumerate(zip(parsed, verdicts, strict=True))
        ]


def contexts_from_columns(columns: Mapping[str, Sequence], n: int) -> list[JudgeContext]:
    """The judge context of each completion from the dataset columns TRL passes as kwargs."""
    missing = [name for name in CONTEXT_COLUMNS if name not in columns]
    if missing:
        raise KeyError(f"MG-GRPO reward needs dataset column(s) {missing}; build the dataset "
                       "with evads_rl.data (it writes question, metadata, clues, reference)")
    return [JudgeContext(*(str(columns[name][i] or "") for name in CONTEXT_COLUMNS))
            for i in range(n)]


def _ratios(values: Sequence[float] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


@dataclass
class _Batch:
    """One batch's scores and the judged terms that have read them."""

    key: tuple
    scored: list[ScoredCompletion]
    read_by: set[str] = field(default_factory=set)


class MGGRPORewards:
    """The three TRL reward functions (answer, trace, format), sharing one scorer.

    TRL weighs them with ``reward_weights = weights.as_list()`` and logs each one's mean
    (``rewards/answer_reward/mean`` ...), so the trainer's reward is exactly
    :func:`evads_rl.rewards.reward_parts`' total. Judge errors and request counts go through
    TRL's ``log_metric``.
    """

    def __init__(self, scorer: MGJudgeScorer) -> None:
        self.scorer = scorer
        self._batch: _Batch | None = None

    def functions(self) -> list[Callable[..., list[float]]]:
        return [self.answer_reward, self.trace_reward, self.format_reward]

    def _scored(self, term: str, completions: Sequence, kwargs: Mapping) -> list[ScoredCompletion]:
        """The batch's scores: judged by the first judged term to ask, reused by the other.

        A term asking again for a batch it has already read means a new batch with the
        same content, which is judged afresh (so failed verdicts are retried)."""
        contexts = contexts_from_columns(kwargs, len(completions))
        key = (tuple(completion_text(c) for c in completions), tuple(contexts),
               _ratios(kwargs.get("accuracy_ratio")), _ratios(kwargs.get("format_ratio")))
        batch = self._batch
        if batch is not None and batch.key == key and term not in batch.read_by:
            batch.read_by.add(term)
            return batch.scored
        before = (self.scorer.stats.requests, self.scorer.stats.errors)
        scored = self.scorer.score(completions, contexts, kwargs.get("accuracy_ratio"),
                                   kwargs.get("format_ratio"))
        self._batch = _Batch(key, scored, {term})
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            log_metric("judge/requests", float(self.scorer.stats.requests - before[0]))
            log_metric("judge/judge_errors", float(self.scorer.stats.errors - before[1]))
            log_metric("judge/error_rate", self.scorer.stats.batch_error_rate)
            log_metric("judge/format_ok", sum(s.parsed.format_ok for s in scored) / len(scored))
        return scored

    def answer_reward(self, prompts=None, completions=(), **kwargs) -> list[float]:
        """accuracy_ratio * G(judge score of the <answer> text)."""
        return [s.parts.answer for s in self._scored("answer", completions, kwargs)]

    def trace_reward(self, prompts=None, completions=(), **kwargs) -> list[float]:
        """accuracy_ratio * G(judge score of the <think> trace for evidence grounding)."""
        return [s.parts.trace for s in self._scored("trace", completions, kwargs)]

    def format_reward(self, prompts=None, completions=(), **kwargs) -> list[float]:
        """format_ratio * R_fmt (no judge call)."""
        ratios = kwargs.get("format_ratio") or [1.0] * len(completions)
        return [float(r) * format_reward_value(c) for c, r in zip(completions, ratios, strict=True)]
