"""Choose the judge and the protocol from the environment: the one place that decides.

Every part of evads (the lmms-eval tasks, the judge CLI, MG-GRPO's rewards, the verl reward,
the Makefile through ``python -m evads_tasks judge --which``) gets its judge from
:func:`judge_from_env`, which decides in this order:

1. ``EVADS_JUDGE`` names the kind: ``similarity`` (the offline fallback, even with a URL set)
   or ``http``/``openai``/``llm`` (needs ``EVADS_JUDGE_BASE_URL``);
2. else ``EVADS_JUDGE_BASE_URL`` set: the LLM judge there;
3. else the caller's fallback (an RL config's ``judge: similarity``), else
   ``$EVADS_JUDGE_FALLBACK`` (``similarity``: what the Makefile's targets set): the offline
   similarity judge;
4. else an error saying how to configure one.

So the similarity judge is never used silently in place of a configured endpoint, and its
numbers cannot pass for the paper's protocol. ``EVADS_PROTOCOL`` (``evads``, the default, or
``official``; the ``--protocol`` flag of every command that judges sets it) picks how the
LLM judge is asked (:mod:`.protocols`); the official protocol reads the authors' script named
by ``EVADS_OFFICIAL_EVAL`` and needs an LLM judge, whose model defaults to the script's
(``qwen-plus``) unless ``EVADS_JUDGE_MODEL`` names another.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from ..official_script import OFFICIAL_EVAL_ENV, OfficialScriptError, load_official_script
from .api import Judge, JudgeConfigError
from .cache import JudgeCacheError
from .http_judge import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_RETRY_BUDGET_S,
    DEFAULT_TIMEOUT_S,
    DEFAULT_UNPARSEABLE_ATTEMPTS,
    HttpJudge,
)
from .protocols import (
    DEFAULT_PROTOCOL,
    EVADS_PROTOCOL,
    OFFICIAL,
    PROTOCOLS,
    JudgeProtocol,
    official_protocol,
)

JUDGE_ENV = "EVADS_JUDGE"
FALLBACK_ENV = "EVADS_JUDGE_FALLBACK"
PROTOCOL_ENV = "EVADS_PROTOCOL"
BASE_URL_ENV = "EVADS_JUDGE_BASE_URL"
MODEL_ENV = "EVADS_JUDGE_MODEL"
API_KEY_ENV = "EVADS_JUDGE_API_KEY"
CONCURRENCY_ENV = "EVADS_JUDGE_CONCURRENCY"
TIMEOUT_ENV = "EVADS_JUDGE_TIMEOUT"
MAX_ATTEMPTS_ENV = "EVADS_JUDGE_MAX_ATTEMPTS"
RETRY_BUDGET_ENV = "EVADS_JUDGE_RETRY_BUDGET"
RETRY_DELAY_ENV = "EVADS_JUDGE_RETRY_DELAY"  # fixed seconds between tries; unset: backoff
# The evads protocol's completion budget (the official protocol keeps the authors' 8000).
MAX_TOKENS_ENV = "EVADS_JUDGE_MAX_TOKENS"
CACHE_DIR_ENV = "EVADS_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/evads/judge")
HTTP_KINDS = ("http", "openai", "llm")
SIMILARITY = "similarity"
# Every variable judge_from_env reads: a change to any of them selects another judge.
JUDGE_ENVS = (JUDGE_ENV, BASE_URL_ENV, MODEL_ENV, API_KEY_ENV, CONCURRENCY_ENV, TIMEOUT_ENV,
              MAX_ATTEMPTS_ENV, RETRY_BUDGET_ENV, RETRY_DELAY_ENV, MAX_TOKENS_ENV, CACHE_DIR_ENV,
              FALLBACK_ENV, PROTOCOL_ENV, OFFICIAL_EVAL_ENV)

HOW_TO_CONFIGURE = (
    f"Configure a judge: set {BASE_URL_ENV} (e.g. http://127.0.0.1:8000/v1 for vLLM, "
    f"https://dashscope.aliyuncs.com/compatible-mode/v1 for qwen-plus, "
    f"https://api.openai.com/v1) and {MODEL_ENV} (e.g. qwen-plus), plus {API_KEY_ENV} when "
    f"the server needs a key; or set {JUDGE_ENV}=similarity for the offline similarity "
    f"fallback (not the paper's judge)."
)


def _positive(env: Mapping[str, str], name: str, default: float, kind: type) -> float:
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


def judge_concurrency(env: Mapping[str, str] | None = None) -> int:
    """$EVADS_JUDGE_CONCURRENCY (default 16): parallel judge calls; JudgeConfigError if bad."""
    env = os.environ if env is None else env
    return int(_positive(env, CONCURRENCY_ENV, DEFAULT_CONCURRENCY, int))


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """$EVADS_CACHE_DIR, else ~/.cache/evads/judge."""
    env = os.environ if env is None else env
    return Path(env.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).expanduser()


def protocol_name(env: Mapping[str, str] | None = None) -> str:
    """``$EVADS_PROTOCOL``: ``evads`` (default) or ``official``; JudgeConfigError otherwise."""
    env = os.environ if env is None else env
    name = env.get(PROTOCOL_ENV, "").strip().lower() or DEFAULT_PROTOCOL
    if name not in PROTOCOLS:
        raise JudgeConfigError(f"{PROTOCOL_ENV}={name!r} is not a protocol: use one of "
                               f"{', '.join(PROTOCOLS)}")
    return name


def judge_protocol(env: Mapping[str, str] | None = None) -> JudgeProtocol:
    """The protocol ``$EVADS_PROTOCOL`` names; the official one with the prompt and call read
    from the authors' script (``$EVADS_OFFICIAL_EVAL``)."""
    env = os.environ if env is None else env
    if protocol_name(env) != OFFICIAL:
        return EVADS_PROTOCOL
    try:
        return official_protocol(load_official_script(env=env))
    except OfficialScriptError as error:
        raise JudgeConfigError(str(error)) from None


def add_protocol_flag(parser: argparse.ArgumentParser) -> None:
    """``--protocol {evads,official}`` for a command that judges (sets ``$EVADS_PROTOCOL``)."""
    parser.add_argument("--protocol", choices=PROTOCOLS, default=None,
                        help=f"how the judge is asked and read (default: ${PROTOCOL_ENV}, else "
                             f"{DEFAULT_PROTOCOL}); official: the authors' evaluation script "
                             f"named by ${OFFICIAL_EVAL_ENV}")


def apply_protocol_flag(value: str | None) -> None:
    """Make a ``--protocol`` flag the run's protocol (this process and its children)."""
    if value:
        os.environ[PROTOCOL_ENV] = value


def judge_kind(env: Mapping[str, str] | None = None, fallback: str | None = None) -> str:
    """``similarity`` or ``http``: which judge the settings select (the order in the module
    docstring); JudgeConfigError when they select none."""
    env = os.environ if env is None else env
    kind = env.get(JUDGE_ENV, "").strip().lower()
    if kind and kind != SIMILARITY and kind not in HTTP_KINDS:
        raise JudgeConfigError(f"{JUDGE_ENV}={kind!r} is not a judge kind (use 'similarity', "
                               f"or leave it unset and set {BASE_URL_ENV}). {HOW_TO_CONFIGURE}")
    if kind == SIMILARITY:
        return SIMILARITY
    if kind or env.get(BASE_URL_ENV, "").strip():
        return "http"
    fallback = (fallback or env.get(FALLBACK_ENV, "")).strip().lower()
    if fallback == SIMILARITY:
        return SIMILARITY
    if fallback:
        raise JudgeConfigError(f"{FALLBACK_ENV}={fallback!r}: the only fallback judge is "
                               f"'similarity'")
    raise JudgeConfigError(f"no judge configured ({BASE_URL_ENV} is not set). "
                           f"{HOW_TO_CONFIGURE}")


def judge_from_env(cache_dir: str | Path | None = None, *, fallback: str | None = None,
                   env: Mapping[str, str] | None = None, cached: bool = True) -> Judge:
    """The judge and protocol the EVADS_JUDGE* / EVADS_PROTOCOL variables describe
    (``fallback``: the judge when none is configured); JudgeConfigError if none is.
    ``cached=False``: an LLM judge that neither reads nor writes the cache (every verdict
    asked afresh: the judge canary, which must see what the judge says now)."""
    env = dict(os.environ if env is None else env)
    kind = judge_kind(env, fallback)
    protocol = judge_protocol(env)
    if kind == SIMILARITY:
        if protocol.name == OFFICIAL:
            raise JudgeConfigError(
                f"{PROTOCOL_ENV}=official needs an LLM judge, not the offline similarity "
                f"judge: set {BASE_URL_ENV} (the model defaults to "
                f"{protocol.default_model}; {MODEL_ENV} overrides it)")
        from .similarity import SimilarityJudge
        return SimilarityJudge()
    base_url = env.get(BASE_URL_ENV, "").strip()
    if not base_url:
        raise JudgeConfigError(f"no judge configured ({BASE_URL_ENV} is not set). "
                               f"{HOW_TO_CONFIGURE}")
    model = env.get(MODEL_ENV, "").strip() or (protocol.default_model or "")
    if not model:
        raise JudgeConfigError(f"{BASE_URL_ENV} is set but {MODEL_ENV} is not. "
                               f"{HOW_TO_CONFIGURE}")
    timeout_s = float(_positive(env, TIMEOUT_ENV, protocol.timeout_s or DEFAULT_TIMEOUT_S,
                                float))
    max_attempts = int(_positive(env, MAX_ATTEMPTS_ENV, DEFAULT_MAX_ATTEMPTS, int))
    unparseable_attempts = DEFAULT_UNPARSEABLE_ATTEMPTS
    retry_budget_s = DEFAULT_RETRY_BUDGET_S
    if protocol.min_tries:  # the official protocol: at least the authors' tries, and time for them
        max_attempts = unparseable_attempts = max(max_attempts, protocol.min_tries)
        retry_budget_s = max(retry_budget_s, protocol.min_tries * (
            timeout_s + (protocol.retry_delay_s or 0)))
    try:
        return HttpJudge(
            base_url, model, env.get(API_KEY_ENV) or None,
            cache_dir=None if not cached else default_cache_dir(env) if cache_dir is None
            else cache_dir,
            concurrency=judge_concurrency(env), timeout_s=timeout_s,
            max_attempts=max_attempts, unparseable_attempts=unparseable_attempts,
            retry_budget_s=float(_positive(env, RETRY_BUDGET_ENV, retry_budget_s, float)),
            retry_delay_s=(float(_positive(env, RETRY_DELAY_ENV, 1.0, float))
                           if env.get(RETRY_DELAY_ENV, "").strip() else protocol.retry_delay_s),
            protocol=protocol,
            max_tokens=int(_positive(env, MAX_TOKENS_ENV, DEFAULT_MAX_TOKENS, int)),
        )
    except JudgeCacheError as error:
        raise JudgeConfigError(f"judge cache ({CACHE_DIR_ENV}): {error}") from error
    except ValueError as error:
        raise JudgeConfigError(f"{BASE_URL_ENV}/{MODEL_ENV}: {error}") from error
