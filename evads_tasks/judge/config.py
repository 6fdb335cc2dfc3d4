"""Choose the judge from the environment: an OpenAI-compatible endpoint, or the offline fallback.

The offline similarity judge is only used when asked for by name (``EVADS_JUDGE=similarity``),
never silently in place of a configured endpoint, so that fallback numbers cannot pass for
the paper's protocol.
"""

from __future__ import annotations

import os
from pathlib import Path

from .api import Judge, JudgeConfigError
from .cache import JudgeCacheError
from .http_judge import DEFAULT_CONCURRENCY, DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT_S, HttpJudge

JUDGE_ENV = "EVADS_JUDGE"
BASE_URL_ENV = "EVADS_JUDGE_BASE_URL"
MODEL_ENV = "EVADS_JUDGE_MODEL"
API_KEY_ENV = "EVADS_JUDGE_API_KEY"
CONCURRENCY_ENV = "EVADS_JUDGE_CONCURRENCY"
TIMEOUT_ENV = "EVADS_JUDGE_TIMEOUT"
MAX_ATTEMPTS_ENV = "EVADS_JUDGE_MAX_ATTEMPTS"
CACHE_DIR_ENV = "EVADS_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/evads/judge")
HTTP_KINDS = ("http", "openai", "llm")
# Every variable judge_from_env reads: a change to any of them selects another judge.
JUDGE_ENVS = (JUDGE_ENV, BASE_URL_ENV, MODEL_ENV, API_KEY_ENV, CONCURRENCY_ENV, TIMEOUT_ENV,
              MAX_ATTEMPTS_ENV, CACHE_DIR_ENV)

HOW_TO_CONFIGURE = (
    f"Configure a judge: set {BASE_URL_ENV} (e.g. http://127.0.0.1:8000/v1 for vLLM, "
    f"https://dashscope.aliyuncs.com/compatible-mode/v1 for qwen-plus, "
    f"https://api.openai.com/v1) and {MODEL_ENV} (e.g. qwen-plus), plus {API_KEY_ENV} when "
    f"the server needs a key; or set {JUDGE_ENV}=similarity for the offline similarity "
    f"fallback (not the paper's judge)."
)


def _positive(env: dict[str, str], name: str, default: float, kind: type) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise JudgeConfigError(f"{name} must be a positive {kind.__name__}, got {text!r}")
    return value


def judge_concurrency(env: dict[str, str] | None = None) -> int:
    """$EVADS_JUDGE_CONCURRENCY (default 16): parallel judge calls; JudgeConfigError if bad."""
    env = os.environ if env is None else env
    return int(_positive(env, CONCURRENCY_ENV, DEFAULT_CONCURRENCY, int))


def default_cache_dir(env: dict[str, str] | None = None) -> Path:
    """$EVADS_CACHE_DIR, else ~/.cache/evads/judge."""
    env = os.environ if env is None else env
    return Path(env.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).expanduser()


def judge_from_env(cache_dir: str | Path | None = None) -> Judge:
    """The judge that the EVADS_JUDGE* variables describe; JudgeConfigError if none is."""
    env = dict(os.environ)
    kind = env.get(JUDGE_ENV, "").strip().lower()
    base_url = env.get(BASE_URL_ENV, "").strip()
    if kind == "similarity":
        from .similarity import SimilarityJudge
        return SimilarityJudge()
    if kind and kind not in HTTP_KINDS:
        raise JudgeConfigError(f"{JUDGE_ENV}={kind!r} is not a judge kind (use 'similarity', "
                               f"or leave it unset and set {BASE_URL_ENV}). {HOW_TO_CONFIGURE}")
    if not base_url:
        raise JudgeConfigError(f"no judge configured ({BASE_URL_ENV} is not set). "
                               f"{HOW_TO_CONFIGURE}")
    model = env.get(MODEL_ENV, "").strip()
    if not model:
        raise JudgeConfigError(f"{BASE_URL_ENV} is set but {MODEL_ENV} is not. "
                               f"{HOW_TO_CONFIGURE}")
    try:
        return HttpJudge(
            base_url, model, env.get(API_KEY_ENV) or None,
            cache_dir=default_cache_dir(env) if cache_dir is None else cache_dir,
            concurrency=judge_concurrency(env),
            timeout_s=float(_positive(env, TIMEOUT_ENV, DEFAULT_TIMEOUT_S, float)),
            max_attempts=int(_positive(env, MAX_ATTEMPTS_ENV, DEFAULT_MAX_ATTEMPTS, int)),
        )
    except JudgeCacheError as error:
        raise JudgeConfigError(f"judge cache ({CACHE_DIR_ENV}): {error}") from error
    except ValueError as error:
        raise JudgeConfigError(f"{BASE_URL_ENV}/{MODEL_ENV}: {error}") from error
