"""Calling an OpenAI-compatible chat-completions endpoint reliably (vLLM, DashScope, OpenAI).

Why it looks like this: the judge and the Q&A generator send tens of thousands of calls from
many threads to servers that rate-limit, fail, stall and sometimes echo what they were sent.
So a call

- is bounded by one semaphore per client (``concurrency`` calls in flight);
- has a deadline: ``timeout_s`` bounds the whole call (connect, send, every byte of the
  reply), not each socket read, so a server that trickles a byte a second cannot hold it;
  the HTTP exchange runs in a worker thread that the caller stops waiting for at the deadline;
- is retried on timeouts, connection errors, 429 (Retry-After honoured up to
  ``retry_after_max_s``), 5xx and malformed bodies, up to ``max_attempts`` tries and within a
  total ``retry_budget_s`` (a wait that would pass the budget ends the call at once); each
  retry logs one WARNING line with the reason, the attempt and the wait;
- fails at once on 401/403/other 4xx (a bad key, URL or model will not mend itself) and on a
  redirect (naming the target host);
- reads every reply as a hostile one (:mod:`evads_tasks.core.chat_replies`): a damaged or
  oversized (also once inflated) body, an unknown charset or a lone surrogate is a failed
  attempt, retried and counted like a 500, never an exception past the client; implausible
  token counts are dropped;
- never lets a secret out: the API key and what the base URL carries besides its address
  (``user:password@``) are redacted, in any escaped form, from every reply, served model
  name, error body and message before it is cut, logged or returned
  (:func:`evads_tasks.core.redaction.redact`); a base URL with a query string (``?api_key=``)
  is refused.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx

from .chat_replies import (
    ACCEPT_ENCODING,
    BadReply,
    body_text,
    checked_text,
    read_body,
    redirect_reason,
    token_count,
)
from .redaction import REDACTED, redact, redact_cut, url_secrets

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 16
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_RETRY_BUDGET_S = 600.0
# How much of a failed body goes into a message, and into ChatError.raw (after redaction).
MESSAGE_BODY_CHARS = 200
RAW_BODY_CHARS = 4000
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class ChatReply:
    """One successful completion."""

    content: str                   # message content (already redacted)
    prompt_tokens: int | None      # from the response's usage, None if absent
    completion_tokens: int | None
    served_model: str | None       # the "model" field the server returned
    attempts: int                  # HTTP calls made, this one included


class ChatError(Exception):
    """The call failed for good: a fatal status, or every retry (or the budget) spent.

    ``str()`` is redacted; ``reason`` is the last failure alone, ``raw`` the redacted last
    body (None when no body came), ``fatal`` True when retrying could not help (4xx),
    ``status`` the last HTTP status (None without one), ``attempts`` the HTTP calls made.
    """

    def __init__(self, message: str, *, reason: str, raw: str | None = None,
                 fatal: bool = False, status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.reason, self.raw, self.fatal, self.status = reason, raw, fatal, status
        self.attempts = attempts


class _Retryable(Exception):
    """One failed attempt worth retrying; ``delay`` is the server's Retry-After, if any."""

    def __init__(self, reason: str, raw: str | None = None, delay: float | None = None,
                 status: int | None = None):
        super().__init__(reason)
        self.raw, self.delay, self.status = raw, delay, status


class _Fatal(_Retryable):
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


def refuse_query_string(base_url: str) -> None:
    """ValueError for a base URL with a query string (``?api_key=...``): its values would be
    spliced into the request path and echoed back by error pages. The message names the
    parameters, never their values."""
    query = urlsplit(base_url).query
    if query:
        names = ", ".join(dict.fromkeys(f"{name}={REDACTED}" for name, _ in
                                        parse_qsl(query, keep_blank_values=True))) or "?"
        raise ValueError(f"chat base URL {public_url(base_url)!r} carries a query string "
                         f"({names}): refused, since its values would go into the request "
                         f"path and come back in error pages and logs; give the key as the "
                         f"API key (its environment variable), not in the URL")


def public_url(base_url: str) -> str:
    """The base URL as scheme://host[:port]/path: no user:password, query or default port.

    Fit for names and logs, and the server's identity in cache keys: two servers on
    different ports or paths may serve different models under one name.
    """
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    netloc = parts.hostname or ""
    if parts.port and parts.port != _DEFAULT_PORTS.get(scheme):
        netloc += f":{parts.port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


class ChatClient:
    """``POST {base_url}/chat/completions`` with retries, a per-call deadline and redaction."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *,
                 concurrency: int = DEFAULT_CONCURRENCY, timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
                 retry_delay_s: float | None = None, backoff_base_s: float = 1.0,
                 backoff_max_s: float = 60.0, retry_after_max_s: float = 300.0) -> None:
        base_url = base_url.strip().rstrip("/").removesuffix("/chat/completions")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"chat base URL must be http(s)://host[:port]/path, "
                             f"got {public_url(base_url)!r}")
        refuse_query_string(base_url)
        if not model.strip():
            raise ValueError("chat model name is empty")
        if min(concurrency, max_attempts) < 1:
            raise ValueError("concurrency and max_attempts must be >= 1")
        if min(timeout_s, retry_budget_s) <= 0 or (retry_delay_s or 0) < 0:
            raise ValueError("timeout_s and retry_budget_s must be > 0, retry_delay_s >= 0")
        self.base_url, self.model = base_url, model.strip()
        self.endpoint = public_url(base_url)
        self.name = f"{self.model} @ {self.endpoint}"
        self.concurrency, self.timeout_s, self.max_attempts = concurrency, timeout_s, max_attempts
        self.retry_budget_s, self.retry_delay_s = retry_budget_s, retry_delay_s
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self._api_key = api_key or None
        self._secrets = (*((self._api_key,) if self._api_key else ()), *url_secrets(base_url))
        self._semaphore = threading.BoundedSemaphore(concurrency)
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        headers["Accept-Encoding"] = ACCEPT_ENCODING  # what read_body inflates under its cap
        # Twice the semaphore: a call given up at its deadline may hold its connection a
        # little longer, and must not make the next call wait for the pool.
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=2 * concurrency,
                                max_keepalive_connections=concurrency))

    def __repr__(self) -> str:
        key = REDACTED if self._api_key else None
        return f"ChatClient(name={self.name!r}, api_key={key!r}, concurrency={self.concurrency})"

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def redact(self, text: str) -> str:
        """``text`` without this client's key or any Bearer/Authorization credential."""
        return redact(text, self._secrets)

    def check_reachable(self, timeout_s: float = 10.0) -> None:
        """One ``GET {base_url}/models``, no retry: ChatError when nothing answers (refused,
        unknown host, timeout) or the key is refused (401/403), so that a run stops before
        hours of generation instead of failing every verdict after them. Any other answer,
        a 404 of a server without ``/models`` included, shows the server is there."""
        try:
            status = self._client.get(f"{self.base_url}/models",
                                      timeout=httpx.Timeout(timeout_s)).status_code
        except httpx.TimeoutException:
            reason = f"no answer within {timeout_s:g}s"
        except httpx.TransportError as error:
            reason = f"connection error ({type(error).__name__}: {self.redact(str(error))})"
        else:
            if status not in (401, 403):
                return
            reason = f"HTTP {status} (check the API key)"
        raise ChatError(f"{self.name} is not reachable: {reason}", reason=reason, fatal=True)

    def complete(self, messages: list[dict], **params: Any) -> ChatReply:
        """One completion; ``params`` go into the JSON body verbatim. Raises ChatError."""
        return self.complete_until(time.monotonic() + self.retry_budget_s, messages, **params)

    def complete_until(self, budget_deadline: float, messages: list[dict],
                       **params: Any) -> ChatReply:
        """As :meth:`complete`, with the retry budget ending at ``budget_deadline``
        (``time.monotonic()``): a caller that makes several calls for one item shares it."""
        body = {"model": self.model, "messages": messages, **params}
        attempts = 0
        while True:
            attempts += 1
            try:
                with self._semaphore:
                    data = self._attempt(body)
            except _Fatal as error:
                raise self._error(str(error), error, attempts, fatal=True) from None
            except _Retryable as error:
                reason = str(error)
                if attempts >= self.max_attempts:
                    raise self._error(reason, error, attempts) from None
                delay = self._delay(attempts, error.delay)
                left = budget_deadline - time.monotonic()
                if delay > left:
                    raise self._error(
                        f"{reason}; retry budget spent (next wait {delay:.1f}s, "
                        f"{max(left, 0):.1f}s left of {self.retry_budget_s:g}s)",
                        error, attempts) from None
                logger.warning("%s: attempt %d/%d failed (%s); retrying in %.1fs", self.name,
                               attempts, self.max_attempts, reason, delay)
                time.sleep(delay)
                continue
            return self._reply(data, attempts)

    def _error(self, reason: str, last: _Retryable, attempts: int,
               fatal: bool = False) -> ChatError:
        return ChatError(f"{self.name}: failed after {attempts} attempt(s): {reason}",
                         reason=reason, raw=last.raw, fatal=fatal, status=last.status,
                         attempts=attempts)

    def _reply(self, data: dict, attempts: int) -> ChatReply:
        """The reply as callers see it: content and served model redacted, token counts
        only when plausible (an implausible one is logged and dropped, never priced)."""
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        counts = {name: token_count(usage.get(name))
                  for name in ("prompt_tokens", "completion_tokens")}
        if dropped := {name: usage[name] for name, count in counts.items()
                       if count is None and usage.get(name) is not None}:
            logger.warning("%s: implausible token usage %s dropped (not counted or priced)",
                           self.name, self.redact(repr(dropped))[:200])
        model = data.get("model")
        return ChatReply(content=self.redact(data["choices"][0]["message"]["content"]),
                         served_model=self.redact(model) if isinstance(model, str) else None,
                         attempts=attempts, **counts)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        with self._rng_lock:
            if retry_after is not None:
                return min(retry_after, self.retry_after_max_s) + self._rng.uniform(
                    0, self.backoff_base_s / 4)
            if self.retry_delay_s is not None:
                return self.retry_delay_s
            return backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, self._rng)

    def _attempt(self, body: dict) -> dict:
        """One HTTP call within ``timeout_s`` from start to the last byte of the reply.

        The exchange runs in a daemon thread: socket timeouts bound each read, not the call,
        so the caller waits on the thread with the deadline and stops waiting at it. The
        thread checks the same deadline between chunks and ends soon after.
        """
        deadline = time.monotonic() + self.timeout_s
        outcome: list[Any] = []
        done = threading.Event()

        def work() -> None:
            try:
                outcome.append(self._post(body, deadline))
            except BaseException as error:  # handed to the caller as is
                outcome.append(error)
            finally:
                done.set()

        threading.Thread(target=work, name="evads-chat-call", daemon=True).start()
        if not done.wait(self.timeout_s):
            raise _Retryable(f"timeout: no complete reply within {self.timeout_s:g}s")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def _post(self, body: dict, deadline: float) -> dict:
        """The HTTP exchange: the parsed body of a good reply, or _Retryable/_Fatal."""
        timeout = httpx.Timeout(max(deadline - time.monotonic(), 0.001))
        status = None
        try:
            with self._client.stream("POST", f"{self.base_url}/chat/completions", json=body,
                                     timeout=timeout) as response:
                status = response.status_code
                if 300 <= status < 400:
                    raise _Fatal(self.redact(redirect_reason(
                        status, response.headers.get("location"))), status=status)
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
                text = body_text(read_body(response.iter_raw(),
                                           response.headers.get("content-encoding"), deadline,
                                           self.timeout_s), response.charset_encoding)
        except BadReply as error:
            raise _Retryable(self.redact(str(error)), status=status) from None
        except httpx.TimeoutException as error:
            raise _Retryable(f"timeout ({type(error).__name__})") from error
        except httpx.TransportError as error:
            raise _Retryable(f"connection error ({type(error).__name__}: "
                             f"{self.redact(str(error))})") from error
        raw = redact_cut(text, RAW_BODY_CHARS, self._secrets) if text else None
        shown = repr(redact_cut(text, MESSAGE_BODY_CHARS, self._secrets))
        if status in (408, 429):
            raise _Retryable(f"HTTP {status} {'rate limited' if status == 429 else 'timeout'}: "
                             f"{shown}", raw, retry_after, status)
        if status >= 500:
            raise _Retryable(f"HTTP {status} server error: {shown}", raw, retry_after, status)
        if status >= 400:
            hint = " (check the API key)" if status in (401, 403) else ""
            raise _Fatal(f"HTTP {status}{hint}: {shown}", raw, status=status)
        try:
            data = json.loads(text)
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise _Retryable(f"malformed chat-completions body: {shown}", raw,
                             status=status) from error
        if not isinstance(content, str):
            raise _Retryable(f"reply content is not text: "
                             f"{redact_cut(repr(content), MESSAGE_BODY_CHARS, self._secrets)}",
                             raw, status=status)
        try:
            checked_text(content, "content")
            if isinstance(data.get("model"), str):
                checked_text(data["model"], "model")
        except BadReply as error:
            raise _Retryable(str(error), raw, status=status) from None
        return data
