"""The E-VAds judge: the official five-level LLM judge over HTTP, cached, plus an offline fallback.

Use ``judge_from_env()`` and code against ``Judge``; see ``api`` for the contract.
"""

from .api import (
    NO_ANSWER,
    RUBRICS,
    Judge,
    JudgeConfigError,
    JudgeRequest,
    JudgeResult,
    no_answer_result,
)
from .cache import CACHE_FILE, JudgeCache, cache_key
from .config import default_cache_dir, judge_from_env
from .http_judge import HttpJudge
from .parsing import UnparseableReply, parse_score
from .prompts import build_messages
from .similarity import SimilarityJudge

__all__ = [
    "CACHE_FILE", "NO_ANSWER", "RUBRICS", "HttpJudge", "Judge", "JudgeCache", "JudgeConfigError",
    "JudgeRequest", "JudgeResult", "SimilarityJudge", "UnparseableReply", "build_messages",
    "cache_key", "default_cache_dir", "judge_from_env", "no_answer_result", "parse_score",
]
