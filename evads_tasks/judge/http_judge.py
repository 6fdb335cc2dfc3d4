"""The LLM judge over an OpenAI-compatible chat-completions endpoint (vLLM, DashScope, OpenAI).

Why it looks like this: a benchmark run sends tens of thousands of judge calls from several
threads, so calls are bounded by one semaphore, retried with exponential backoff and jitter
on timeouts, connection errors, 429 (honouring Retry-After) and 5xx, asked once more after
an unparseable reply (a separate, smaller budget: at temperature 0 the judge mostly repeats
itself), and cached on disk so that no verdict is paid for twice. After its budget a call
yields ``score=None`` with the reason: a failed judge is never a silent 0. An empty answer
scores 0 by rule without a call (``api.NO_ANSWER``).
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from tqdm import tqdm

from .api import JudgeRequest, JudgeResult, no_answer_result
from .cache import JudgeCache, cache_key
from .parsing import UnparseableReply, parse_score
from .prompts import build_messages

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_ATTEMPTS = 6
# At temperature 0 a judge tends to repeat an unparseable reply: one more try, not six.
DEFAULT_UNPARSEABLE_ATTEMPTS = 2
DEFAULT_TIMEOUT_S = 120.0
REDACTED = "***"


class _Retryable(Exception):
    """One failed attempt worth retrying; ``delay`` is the server's Retry-After, if any."""

    def __init__(self, reason: str, raw: str | None = None, delay: float | None = None):
        super().__init__(reason)
        self.raw, self.delay = raw, delay


class _Fatal(Exception):
    """A failure that retrying cannot fix (bad key, wrong URL or model)."""


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: half of min(cap, base*2^(attempt-1)) plus
    a uniform draw over the other half, so that concurrent retries spread out."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _public_url(base_url: str) -> str:
    """The base URL as scheme://host[:port]/path: no user:password, query or default port.

    Fit for names and logs, and the judge's identity in cache keys: two servers on
    different ports or paths may serve different models under one name.
    """
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    netloc = parts.hostname or ""
    if parts.port and parts.port != _DEFAULT_PORTS.get(scheme):
        netloc += f":{parts.port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


class HttpJudge:
    """Judge through ``POST {base_url}/chat/completions`` at temperature 0."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *,
                 cache_dir: str | Path | None = None, concurrency: int = DEFAULT_CONCURRENCY,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 unparseable_attempts: int = DEFAULT_UNPARSEABLE_ATTEMPTS,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 backoff_base_s: float = 1.0, backoff_max_s: float = 60.0,
                 retry_after_max_s: float = 300.0, progress: bool = True) -> None:
        base_url = base_url.strip().rstrip("/")
        base_url = base_url.removesuffix("/chat/completions")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"judge base URL must be http(s)://host[:port]/path, "
                             f"got {_public_url(base_url)!r}")
        if not model.strip():
            raise ValueError("judge model name is empty")
        if min(concurrency, max_attempts, unparseable_attempts) < 1:
            raise ValueError("concurrency, max_attempts and unparseable_attempts must be >= 1")
        self.base_url, self.model = base_url, model.strip()
        self.endpoint = _public_url(base_url)
        self.name = f"{self.model} @ {self.endpoint}"
        self.concurrency, self.max_attempts = concurrency, max_attempts
        self.unparseable_attempts = unparseable_attempts
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.retry_after_max_s, self.progress = retry_after_max_s, progress
        self._api_key = api_key or None
        self._semaphore = threading.BoundedSemaphore(concurrency)
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self.cache = JudgeCache(cache_dir) if cache_dir is not None else None
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=concurrency,
                                max_keepalive_connections=concurrency))

    def __repr__(self) -> str:
        key = REDACTED if self._api_key else None
        return f"HttpJudge(name={self.name!r}, api_key={key!r}, concurrency={self.concurrency})"

    def __enter__(self) -> HttpJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()
        if self.cache is not None:
            self.cache.close()

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, REDACTED) if self._api_key else text

    def _result(self, score: float | None, raw: str | None, error: str | None,
                cached: bool = False) -> JudgeResult:
        return JudgeResult(score=score, raw=None if raw is None else self._redact(raw),
                           error=None if error is None else self._redact(error),
                           cached=cached, judge=self.name)

    def judge(self, request: JudgeRequest) -> JudgeResult:
        if not request.answer.strip():
            return no_answer_result(self.name)
        messages = build_messages(request)
        key = cache_key(self.model, self.endpoint, messages)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return self._result(hit[0], hit[1], None, cached=True)
        last_raw: str | None = None
        reason = "no attempt made"
        attempts = failed_calls = unparseable = 0
        while True:
            attempts += 1
            try:
                with self._semaphore:
                    raw = self._post(messages)
            except _Fatal as error:
                reason = str(error)
                break
            except _Retryable as error:
                reason = str(error)
                failed_calls += 1
                if failed_calls >= self.max_attempts:
                    break
                delay = self._delay(failed_calls, error.delay)
                logger.info("judge call %d/%d failed (%s); retrying in %.2fs", failed_calls,
                            self.max_attempts, self._redact(reason), delay)
                time.sleep(delay)
                continue
            last_raw = raw
            try:
                score = parse_score(raw)
            except UnparseableReply as error:
                reason = f"unparseable judge reply ({error})"
                unparseable += 1
                if unparseable >= self.unparseable_attempts:
                    break
                logger.info("unparseable judge reply %d/%d (%s); asking again", unparseable,
                            self.unparseable_attempts, error)
                continue
            if self.cache is not None:
                self.cache.put(key, model=self.model, endpoint=self.endpoint,
                               rubric=request.rubric, score=score, raw=self._redact(raw))
            return self._result(score, raw, None)
        error = f"judge failed after {attempts} attempt(s): {reason}"
        logger.warning("%s", self._redact(error))
        return self._result(None, last_raw, error)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        with self._rng_lock:
            if retry_after is not None:
                return min(retry_after, self.retry_after_max_s) + self._rng.uniform(
                    0, self.backoff_base_s / 4)
            return backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, self._rng)

    def _post(self, messages: list[dict[str, str]]) -> str:
        """One HTTP call; the reply text, or _Retryable/_Fatal saying what went wrong."""
        body = {"model": self.model, "messages": messages, "temperature": 0}
        try:
            response = self._client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.TimeoutException as error:
            raise _Retryable(f"timeout ({type(error).__name__})") from error
        except httpx.TransportError as error:
            raise _Retryable(f"connection error ({type(error).__name__}: {error})") from error
        status = response.status_code
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        if status == 429:
            raise _Retryable("HTTP 429 rate limited", delay=retry_after)
        if status >= 500:
            raise _Retryable(f"HTTP {status} server error: {response.text[:200]!r}",
                             delay=retry_after)
        if status >= 400:
            hint = " (check EVADS_JUDGE_API_KEY)" if status in (401, 403) else ""
            raise _Fatal(f"HTTP {status}{hint}: {response.text[:300]!r}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise _Retryable(f"malformed chat-completions body: {response.text[:200]!r}") \
                from error
        if not isinstance(content, str):
            raise _Retryable(f"reply content is not text: {content!r:.200}")
        return content

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
