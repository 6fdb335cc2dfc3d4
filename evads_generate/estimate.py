"""``--dry-run``: the calls and tokens a run would cost, before any call is made.

Prompts are built with the real prompt builders on each video's real metadata (an
annotation file, or a raw video already perceived in the folder); for a raw video not yet
perceived the metadata is sized from its duration at the paper's densities (Aden 5.08 +
Oden 18.66 units/s, plus each line's ``Time Ns: OCR Text: [...]`` frame). Tokens are
counted by ``evads_tasks.core.tokens``. Completions are the typical sizes below. The
number of LLM checks depends on how many candidates fail: the estimate assumes
``CHECKED_PER_TASK`` candidates checked per task and a second proposal round for
``SECOND_ROUND_SHARE`` of the videos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evads_tasks.core.annotations import TASK_CODES
from evads_tasks.core.judge import JudgeRequest, build_messages
from evads_tasks.core.judge.accounting import Price
from evads_tasks.core.tokens import JUDGE_REPLY_TOKENS, message_tokens

from .inputs import VideoInput
from .prompts import answerer_messages, blind_messages, proposer_messages
from .roles import ROLES
from .settings import GeneratorSettings

UNITS_PER_SECOND = 5.08 + 18.66      # the paper's Aden + Oden for E-VAds
LINE_FRAME_CHARS = 40                # "Time 12s: OCR Text: [...] ; ASR Text: """
CANDIDATE_TOKENS = 180               # one candidate in a proposal reply
ANSWER_TOKENS = 80
CHECKED_PER_TASK = 1.5
SECOND_ROUND_SHARE = 0.3
# A question and an answer of typical length (a ~20-character question, a ~60-character
# answer), for sizing the answer and judge prompts.
TYPICAL_QUESTION = "视频中宣称的核心卖点是什么，依据是哪一句字幕？"
TYPICAL_ANSWER = ("视频第3秒字幕和口播都强调该卖点，并在结尾价格卡给出限时优惠，"
                  "以低价和赠品促使观众立即下单购买。")


def sized_metadata(duration: float) -> str:
    """A stand-in metadata block as long as a ``duration``-second E-VAds video's."""
    per_line = "字" * round(UNITS_PER_SECOND) + "x" * LINE_FRAME_CHARS
    return "\n".join(per_line for _ in range(max(1, round(duration))))


@dataclass(frozen=True)
class Estimate:
    videos: int
    calls: float
    prompt_tokens: float
    completion_tokens: float
    exact_metadata: int      # videos whose real metadata was measured


def video_cost(metadata: str, settings: GeneratorSettings) -> tuple[float, float, float]:
    """(calls, prompt tokens, completion tokens) expected for one video."""
    frames = ["x"] * settings.frames
    propose_in = sum(message_tokens(proposer_messages(
        role, metadata, list(TASK_CODES), language=settings.language,
        per_task=settings.candidates_per_task, max_answer_units=settings.max_answer_units,
        frame_urls=frames or None)) for role in ROLES)
    propose_out = len(ROLES) * len(TASK_CODES) * settings.candidates_per_task * CANDIDATE_TOKENS
    rounds = 1 + (SECOND_ROUND_SHARE if settings.rounds > 1 else 0)
    checked = len(TASK_CODES) * CHECKED_PER_TASK
    judge_in = message_tokens(build_messages(JudgeRequest(
        TYPICAL_QUESTION, metadata, TYPICAL_ANSWER, TYPICAL_ANSWER, TYPICAL_ANSWER)))
    check_in = (message_tokens(answerer_messages(metadata, TYPICAL_QUESTION, settings.language))
                + message_tokens(blind_messages(TYPICAL_QUESTION, settings.language))
                + 2 * judge_in)
    check_out = 2 * ANSWER_TOKENS + 2 * JUDGE_REPLY_TOKENS
    calls = rounds * len(ROLES) + checked * 4
    return (calls, rounds * propose_in + checked * check_in,
            rounds * propose_out + checked * check_out)


def estimate(items: Sequence[VideoInput], known: dict[str, str],
             durations: dict[str, float], settings: GeneratorSettings) -> Estimate:
    """The whole run: ``known`` maps video ids to real metadata, ``durations`` the rest."""
    calls = prompt = completion = 0.0
    exact = 0
    for item in items:
        metadata = known.get(item.video_id)
        exact += metadata is not None
        if metadata is None:
            metadata = sized_metadata(durations.get(item.video_id) or 30.0)
        c, p, o = video_cost(metadata, settings)
        calls, prompt, completion = calls + c, prompt + p, completion + o
    return Estimate(len(items), calls, prompt, completion, exact)


def render(result: Estimate, price_in: float | None, price_out: float | None,
           timed: bool = False) -> str:
    """The estimate as printed (``timed``: one timed call follows, so it was not all
    "nothing sent")."""
    per = max(result.videos, 1)
    sent = "nothing sent but the one timed call below" if timed else "nothing sent"
    lines = [
        f"dry run: {result.videos} videos, {sent} "
        f"(metadata measured for {result.exact_metadata}, sized from duration for the rest)",
        f"  calls      ~{result.calls:,.0f}  (~{result.calls / per:.1f} per video: 5 role "
        f"proposals, a second round for ~{SECOND_ROUND_SHARE:.0%} of videos, 4 per checked "
        f"candidate at ~{CHECKED_PER_TASK:g} checked per task)",
        f"  tokens in  ~{result.prompt_tokens:,.0f}  (~{result.prompt_tokens / per:,.0f} "
        "per video)",
        f"  tokens out ~{result.completion_tokens:,.0f}  "
        f"(~{result.completion_tokens / per:,.0f} per video)",
    ]
    if price_in is not None or price_out is not None:
        cost = Price(price_in or 0.0, price_out or 0.0).cost(result.prompt_tokens,
                                                             result.completion_tokens)
        lines.append(f"  cost       ~${cost:,.2f} at ${price_in or 0:g} / ${price_out or 0:g} "
                     "per million input / output tokens")
    return "\n".join(lines)
