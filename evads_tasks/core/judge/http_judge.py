"""The LLM judge over an OpenAI-compatible chat-completions endpoint (vLLM, DashScope, OpenAI).

Why it looks like this: the transport (semaphore, per-call deadline, retries with backoff and
Retry-After, redaction) is :class:`evads_tasks.core.chat.client.ChatClient`, shared with the Q&A
generator. On top of it the judge asks once more after an unparseable reply (a separate,
smaller budget: at temperature 0 the judge mostly repeats itself), shares one retry budget
between those tries, and caches parsed verdicts on disk so that no verdict is paid for
twice. After its budget a call yields ``score=None`` with the reason: a failed judge is never
a silent 0. An empty answer scores 0 by rule without a call (``api.NO_ANSWER``). A
deterministic call (temperature 0) that brings back the same unparseable reply twice is not
asked again: the official protocol's ten tries would pay for the same reply ten times. The
verdict is read from the whole reply; what is kept of it (results, sample logs, the cache) is
a bounded excerpt (:func:`evads_tasks.core.chat.replies.stored_excerpt`). A cache that fails
mid-run costs no verdict: :attr:`HttpJudge.problem` says so, for the command to report.

Before a run, :meth:`HttpJudge.preflight` judges its first request with one timed attempt
(``core/chat/preflight.py``); a verdict it gets is handed to the run, not asked for again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from ..chat.client import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_BUDGET_S,
    DEFAULT_TIMEOUT_S,
    ChatClient,
    ChatError,
)
from ..chat.preflight import CallTiming
from ..chat.replies import stored_excerpt
from ..redaction import REDACTED
from .accounting import ServedModels
from .api import JudgeRequest, JudgeResult, no_answer_result
from .cache import JudgeCache, cache_key
from .parsing import UnparseableReply
from .protocols import EVADS_PROTOCOL, JudgeProtocol

logger = logging.getLogger(__name__)

# At temperature 0 a judge tends to repeat an unparseable reply: one more try, not six.
DEFAULT_UNPARSEABLE_ATTEMPTS = 2
# The evads protocol's completion budget: a verdict is a few sentences and a score line
# (~120 tokens); a judge that does not stop is cut here, not at the end of its context.
DEFAULT_MAX_TOKENS = 1024
__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_MAX_ATTEMPTS", "DEFAULT_MAX_TOKENS",
           "DEFAULT_RETRY_BUDGET_S", "DEFAULT_TIMEOUT_S", "DEFAULT_UNPARSEABLE_ATTEMPTS",
           "HttpJudge"]


class HttpJudge:
    """Judge through ``POST {base_url}/chat/completions``, asking and reading as ``protocol``
    says (messages, call parameters, parse rule; see :mod:`.protocols`)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *,
                 cache_dir: str | Path | None = None, concurrency: int = DEFAULT_CONCURRENCY,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 unparseable_attempts: int = DEFAULT_UNPARSEABLE_ATTEMPTS,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 backoff_base_s: float = 1.0, backoff_max_s: float = 60.0,
                 retry_after_max_s: float = 300.0, progress: bool = True,
                 retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
                 retry_delay_s: float | None = None,
                 protocol: JudgeProtocol = EVADS_PROTOCOL,
                 max_tokens: int | None = DEFAULT_MAX_TOKENS) -> None:
        """``max_tokens``: the completion budget of a protocol whose call sets none (the
        evads protocol); the official protocol keeps the authors' (None: send none)."""
        if unparseable_attempts < 1:
            raise ValueError("unparseable_attempts must be >= 1")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        self._client = ChatClient(
            base_url, model, api_key, concurrency=concurrency, timeout_s=timeout_s,
            max_attempts=max_attempts, retry_budget_s=retry_budget_s,
            retry_delay_s=retry_delay_s, backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s, retry_after_max_s=retry_after_max_s)
        self.base_url, self.model = self._client.base_url, self._client.model
        self.endpoint, self.name = self._client.endpoint, self._client.name
        self.concurrency, self.max_attempts = concurrency, max_attempts
        self.unparseable_attempts, self.retry_budget_s = unparseable_attempts, retry_budget_s
        self.progress = progress
        self.protocol, self.timeout_s, self.retry_delay_s = protocol, timeout_s, retry_delay_s
        # Sent with every call, verbatim into the JSON body (the budget clipped by the
        # client when the server's context cannot hold it, see core/chat/server_fit.py).
        self.call_params: dict[str, object] = dict(protocol.call_params)
        if max_tokens is not None:
            self.call_params.setdefault("max_tokens", max_tokens)
        # Verdicts of preflight calls, handed to the run's judge() of the same request.
        self._primed: dict[str, JudgeResult] = {}
        self._primed_lock = threading.Lock()
        self.cache = JudgeCache(cache_dir) if cache_dir is not None else None
        self.served_models = ServedModels(self.name)

    def check_reachable(self, timeout_s: float = 10.0) -> None:
        """ChatError when the judge's server does not answer or refuses the key."""
        self._client.check_reachable(min(timeout_s, self.timeout_s))

    def __repr__(self) -> str:
        key = REDACTED if self._client._api_key else None
        return f"HttpJudge(name={self.name!r}, api_key={key!r}, concurrency={self.concurrency})"

    def __enter__(self) -> HttpJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()
        if self.cache is not None:
            self.cache.close()

    @property
    def problem(self) -> str | None:
        """Why the judge cache stopped working mid-run (None while it works): the run's
        verdicts are all returned, but the command must say so and exit non-zero."""
        return None if self.cache is None else self.cache.problem

    def _result(self, score: float | None, raw: str | None, error: str | None,
                cached: bool = False, **usage: int | str | None) -> JudgeResult:
        """``raw``: what is kept of the reply (``stored_excerpt``, as the cache holds it);
        ``usage``: JudgeResult's accounting fields (tokens, served model, calls)."""
        redact = self._client.redact
        return JudgeResult(score=score, raw=None if raw is None else redact(raw),
                           error=None if error is None else redact(error),
                           cached=cached, judge=self.name, **usage)

    def settings(self) -> dict:
        """The judge as results record it: model, endpoint, protocol, call parameters, tries,
        and what fitting the server changed so far (a clipped budget, a lower concurrency:
        ``server_fit``, and in words ``server_notes``)."""
        return {"judge": self.name, "model": self.model, "endpoint": self.endpoint,
                "protocol": {"name": self.protocol.name}, "call_params": dict(self.call_params),
                "timeout_s": self.timeout_s, "max_attempts": self.max_attempts,
                "unparseable_attempts": self.unparseable_attempts,
                "retry_delay_s": self.retry_delay_s, "server_fit": self._client.server_fit(),
                "server_notes": self._client.server_notes()}

    def calls_for(self, request: JudgeRequest) -> bool:
        """Whether judging ``request`` needs a call now: not scored by rule, not cached."""
        if self.protocol.by_rule(request):
            return False
        return self.cache is None or self.cache.get_verdict(self.request_key(request)) is None

    def preflight(self, request: JudgeRequest) -> CallTiming:
        """Judge ``request`` with one timed attempt (no retry, no second try after an
        unparseable reply). A verdict it gets is kept for the run's ``judge(request)``."""
        started = time.monotonic()
        result = self._judge(request, max_attempts=1, unparseable_attempts=1, quiet=True)
        seconds = time.monotonic() - started
        if result.score is not None:
            with self._primed_lock:
                self._primed[self.request_key(request)] = result
        replied = result.raw is not None  # a reply came, maybe an unparseable one
        return CallTiming(seconds, max(result.calls, 1), result.prompt_tokens,
                          result.completion_tokens, None if replied else result.error,
                          result.error if replied else None)

    def request_key(self, request: JudgeRequest) -> str:
        """The cache key of a request: what a dry run looks up to count the calls left."""
        return self._key(self.protocol.messages(request))

    def _key(self, messages: list[dict[str, str]]) -> str:
        return cache_key(self.model, self.endpoint, messages, self.protocol.cache_params())

    def judge(self, request: JudgeRequest) -> JudgeResult:
        return self._judge(request)

    def _judge(self, request: JudgeRequest, max_attempts: int | None = None,
               unparseable_attempts: int | None = None, quiet: bool = False) -> JudgeResult:
        if self.protocol.by_rule(request):
            return no_answer_result(self.name)
        messages = self.protocol.messages(request)
        key = self._key(messages)
        with self._primed_lock:
            primed = self._primed.pop(key, None)
        if primed is not None:
            return primed
        if self.cache is not None and (hit := self.cache.get_verdict(key)) is not None:
            return self._result(hit.score, hit.raw, None, cached=True,
                                prompt_tokens=hit.prompt_tokens,
                                completion_tokens=hit.completion_tokens,
                                served_model=hit.served_model)
        budget_deadline = time.monotonic() + self.retry_budget_s
        unparseable_attempts = unparseable_attempts or self.unparseable_attempts
        last_raw: str | None = None
        attempts = unparseable = 0
        usage: dict = {"prompt_tokens": None, "completion_tokens": None, "served_model": None}
        while True:
            try:
                reply = self._client.complete_until(budget_deadline, messages,
                                                    max_attempts=max_attempts,
                                                    **self.call_params)
            except ChatError as error:
                attempts += error.attempts
                reason = error.reason
                if error.status in (401, 403):
                    reason += "; the key comes from EVADS_JUDGE_API_KEY"
                break
            attempts += reply.attempts
            repeated = reply.content == last_raw
            last_raw = reply.content
            _add_usage(usage, reply.prompt_tokens, reply.completion_tokens, reply.served_model)
            self.served_models.observe(reply.served_model)
            try:
                score = self.protocol.parse(request, reply.content)
            except UnparseableReply as error:
                reason = f"unparseable judge reply ({error})"
                unparseable += 1
                if repeated and _deterministic(self.call_params):
                    reason += ("; the judge gave the same reply twice at temperature 0, so "
                               "asking again cannot change it")
                    break
                if unparseable >= unparseable_attempts:
                    break
                logger.warning("%s: unparseable judge reply %d/%d (%s); asking again",
                               self.name, unparseable, unparseable_attempts, error)
                continue
            kept = stored_excerpt(reply.content)  # the client redacted it already
            if self.cache is not None:
                self.cache.put(key, model=self.model, endpoint=self.endpoint,
                               rubric=request.rubric, score=score, raw=kept, **usage)
            return self._result(score, kept, None, calls=attempts, **usage)
        result = self._result(None, None if last_raw is None else stored_excerpt(last_raw),
                              f"judge failed after {attempts} attempt(s): {reason}",
                              calls=attempts, **usage)
        if not quiet:
            logger.warning("%s", result.error)
        return result

    def judge_many(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool, \
                tqdm(total=len(requests), desc="judge", unit="call",
                     disable=not self.progress or len(requests) < 2) as bar:
            def run(request: JudgeRequest) -> JudgeResult:
                result = self.judge(request)
                bar.update(1)
                return result
            return list(pool.map(run, requests))


def _deterministic(call_params: dict) -> bool:
    """Whether a call asks for the same reply every time (temperature 0)."""
    temperature = call_params.get("temperature")
    return isinstance(temperature, int | float) and temperature == 0


def _add_usage(usage: dict, prompt: int | None, completion: int | None,
               served: str | None) -> None:
    """Add one reply's usage to a verdict's (every try is paid); the last served model."""
    for name, value in (("prompt_tokens", prompt), ("completion_tokens", completion)):
        if value is not None:
            usage[name] = (usage[name] or 0) + value
    usage["served_model"] = served or usage["served_model"]
