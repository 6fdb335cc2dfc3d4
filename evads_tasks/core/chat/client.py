"""Calling an OpenAI-compatible chat-completions endpoint reliably (vLLM, DashScope, OpenAI).

Why it looks like this: the judge and the Q&A generator send tens of thousands of calls from
many threads to servers that rate-limit, fail, stall and sometimes echo what they were sent.
So a call

- is bounded per client by an adaptive limit (``core/chat/concurrency.py``): at most
  ``concurrency`` calls in flight, fewer while calls time out or slow down because the server
  queues them;
- has a deadline: ``timeout_s`` bounds the whole call (connect, send, every byte of the
  reply), not each socket read, so a server that trickles a byte a second cannot hold it;
  the HTTP exchange runs in a worker thread that the caller stops waiting for at the deadline;
- is retried on timeouts, connection errors, 429 (Retry-After honoured up to
  ``retry_after_max_s``), 5xx and malformed bodies, up to ``max_attempts`` tries and within a
  total ``retry_budget_s`` (a wait that would pass the budget ends the call at once); each
  retry logs one WARNING line with the reason, the attempt and the wait;
- fails at once on 401/403/other 4xx (a bad key, URL or model will not mend itself), on a
  redirect (naming the target host), and on an error that is about the server rather than
  the call (``core/chat/server_fit.py``): a refused ``response_format`` (``ChatError.refused``:
  the caller asks again without it) or a context window the request does not fit
  (``ChatError.overflow``);
- fits its completion budget (``max_tokens``) to the server's context window once the server
  has said what it is (``GET /models``, or a context-length error, after which the call is
  sent once more with the budget that fits): the prompt is never cut, only the budget;
- reads every reply as a hostile one (:mod:`evads_tasks.core.chat.replies`): a damaged or
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

from ..redaction import REDACTED, redact, redact_cut, url_secrets
from ..tokens import message_tokens
from .concurrency import AdaptiveLimit
from .replies import (
    ACCEPT_ENCODING,
    BadReply,
    body_text,
    checked_text,
    read_body,
    redirect_reason,
    token_count,
)
from .server_fit import (
    BUDGET_KEYS,
    OVERFLOW_REASON,
    ContextOverflow,
    context_from_models,
    fitted_max_tokens,
    parse_context_error,
    refused_parameter,
)

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
    ``status`` the last HTTP status (None without one), ``attempts`` the HTTP calls made;
    ``refused`` the body parameter the server refused (``"response_format"``), ``overflow``
    the server's context window when the request did not fit it (both fatal).
    """

    def __init__(self, message: str, *, reason: str, raw: str | None = None,
                 fatal: bool = False, status: int | None = None, attempts: int = 0,
                 refused: str | None = None, overflow: ContextOverflow | None = None) -> None:
        super().__init__(message)
        self.reason, self.raw, self.fatal, self.status = reason, raw, fatal, status
        self.attempts, self.refused, self.overflow = attempts, refused, overflow


class _Retryable(Exception):
    """One failed attempt worth retrying; ``delay`` is the server's Retry-After, if any."""

    def __init__(self, reason: str, raw: str | None = None, delay: float | None = None,
                 status: int | None = None):
        super().__init__(reason)
        self.raw, self.delay, self.status = raw, delay, status


class _Fatal(_Retryable):
    """A failure that retrying cannot fix (bad key, wrong URL or model)."""


class _Refused(_Fatal):
    """The server does not take a parameter of the body (``parameter``)."""

    def __init__(self, reason: str, raw: str | None, status: int, parameter: str) -> None:
        super().__init__(reason, raw, status=status)
        self.parameter = parameter


class _Overflow(_Fatal):
    """The request does not fit the server's context window."""

    def __init__(self, reason: str, raw: str | None, status: int,
                 overflow: ContextOverflow) -> None:
        super().__init__(reason, raw, status=status)
        self.overflow = overflow


def _server_problem(status: int, text: str, body: dict, raw: str | None, shown: str,
                    secrets: tuple[str, ...]) -> _Fatal | None:
    """An error status that is about the server, not the call: a context window the request
    does not fit, or a parameter the server refuses (never retried as it is). ``shown``
    becomes the server's own error message when the body has one (``error.message``)."""
    shown = _error_message(text, shown, secrets)
    if 400 <= status < 500 and (overflow := parse_context_error(text)) is not None:
        return _Overflow(f"HTTP {status} {OVERFLOW_REASON} of {overflow.window} tokens: "
                         f"{shown}", raw, status, overflow)
    if (parameter := refused_parameter(status, text, body)) is not None:
        return _Refused(f"HTTP {status} the server refused {parameter}: {shown}", raw, status,
                        parameter)
    return None


def _error_message(text: str, shown: str, secrets: tuple[str, ...]) -> str:
    """The ``error.message`` of an OpenAI-style error body, whitespace folded, redacted and
    cut (else ``shown``)."""
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return shown
    if not isinstance(message, str):
        return shown
    return redact_cut(" ".join(message.split()), MESSAGE_BODY_CHARS, secrets)


def _congested(error: _Retryable) -> bool:
    """Whether a failed attempt says the server is overloaded or the call waited too long."""
    return error.status in (429, 503) or str(error).startswith("timeout")


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
        self._limit = AdaptiveLimit(concurrency, timeout_s, name=self.name)
        # What the server said about its context window (see _fit_budget).
        self.context_window: int | None = None
        self.context_source: str | None = None
        self._models_checked = False
        self._fit_lock = threading.Lock()
        self._clipped: dict[str, int] = {}
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

    def complete_until(self, budget_deadline: float, messages: list[dict], *,
                       max_attempts: int | None = None, **params: Any) -> ChatReply:
        """As :meth:`complete`, with the retry budget ending at ``budget_deadline``
        (``time.monotonic()``): a caller that makes several calls for one item shares it.
        ``max_attempts`` overrides the client's tries (1: a single timed call)."""
        body = {"model": self.model, "messages": messages, **params}
        tries = max_attempts or self.max_attempts
        attempts = 0
        refitted = False
        while True:
            attempts += 1
            body = self._fit_budget(body)
            try:
                data = self._limited_attempt(body)
            except _Overflow as error:
                refit = None if refitted else self._refit(body, error.overflow)
                if refit is None:
                    raise self._error(str(error), error, attempts, fatal=True) from None
                body, refitted = refit, True  # sent once more: another body, not a retry
                continue
            except _Fatal as error:
                raise self._error(str(error), error, attempts, fatal=True) from None
            except _Retryable as error:
                reason = str(error)
                if attempts >= tries:
                    raise self._error(reason, error, attempts) from None
                delay = self._delay(attempts, error.delay)
                left = budget_deadline - time.monotonic()
                if delay > left:
                    raise self._error(
                        f"{reason}; retry budget spent (next wait {delay:.1f}s, "
                        f"{max(left, 0):.1f}s left of {self.retry_budget_s:g}s)",
                        error, attempts) from None
                logger.warning("%s: attempt %d/%d failed (%s); retrying in %.1fs", self.name,
                               attempts, tries, reason, delay)
                time.sleep(delay)
                continue
            return self._reply(data, attempts)

    def _error(self, reason: str, last: _Retryable, attempts: int,
               fatal: bool = False) -> ChatError:
        return ChatError(f"{self.name}: failed after {attempts} attempt(s): {reason}",
                         reason=reason, raw=last.raw, fatal=fatal, status=last.status,
                         attempts=attempts, refused=getattr(last, "parameter", None),
                         overflow=getattr(last, "overflow", None))

    def _limited_attempt(self, body: dict) -> dict:
        """One attempt inside the adaptive limit, which learns from how it went."""
        slot = self._limit.acquire()
        started = time.monotonic()
        seconds: float | None = None
        congested = False
        try:
            data = self._attempt(body)
            seconds = time.monotonic() - started
            return data
        except _Retryable as error:
            congested = _congested(error)
            raise
        finally:
            self._limit.release(slot, seconds, congested)

    # ---- fitting the completion budget to the server's context ------------------------
    def _fit_budget(self, body: dict) -> dict:
        """``body`` with its budget clipped to the room the context window leaves beside
        the prompt (estimated with ``core.tokens``), once the window is known."""
        key = next((k for k in BUDGET_KEYS if isinstance(body.get(k), int)), None)
        if key is None or (window := self._window()) is None:
            return body
        fitted = fitted_max_tokens(body[key], window, message_tokens(body["messages"]))
        if fitted is None or fitted == body[key]:
            return body  # the server measures the prompt exactly: let it say
        self._note_clip(body[key], fitted)
        return {**body, key: fitted}

    def _refit(self, body: dict, overflow: ContextOverflow) -> dict | None:
        """The body once more with the budget the server's own count leaves room for, or
        None when it had no budget to cut or even the prompt does not fit."""
        with self._fit_lock:
            self.context_window = overflow.window
            self.context_source = "a context-length error"
            self._models_checked = True
        key = next((k for k in BUDGET_KEYS if isinstance(body.get(k), int)), None)
        if key is None or overflow.prompt_tokens is None:
            return None
        fitted = fitted_max_tokens(body[key], overflow.window, overflow.prompt_tokens)
        if fitted is None or fitted >= body[key]:
            return None
        self._note_clip(body[key], fitted)
        return {**body, key: fitted}

    def _window(self) -> int | None:
        """The context window, asked of ``GET /models`` once (a server that lists none, or
        has no such route, leaves it to the first context-length error)."""
        with self._fit_lock:
            if not self._models_checked:
                self._models_checked = True
                window = self._models_window()
                if window is not None:
                    self.context_window, self.context_source = window, "GET /models"
            return self.context_window

    def _models_window(self) -> int | None:
        try:
            response = self._client.get(f"{self.base_url}/models",
                                        timeout=min(10.0, self.timeout_s))
            if response.status_code != 200:
                return None
            return context_from_models(response.json(), self.model)
        except (httpx.HTTPError, ValueError):
            return None

    def _note_clip(self, requested: int, sent: int) -> None:
        with self._fit_lock:
            clipped = self._clipped
            clipped["calls"] = clipped.get("calls", 0) + 1
            clipped["requested"] = max(clipped.get("requested", 0), requested)
            clipped["lowest"] = min(clipped.get("lowest", sent), sent)
            clipped["highest"] = max(clipped.get("highest", 0), sent)

    def server_fit(self) -> dict:
        """What fitting this server changed so far: its context window and where it came
        from, the calls whose budget was clipped, the concurrency now (for run records)."""
        with self._fit_lock:
            clipped = dict(self._clipped)
        return {"context_window": self.context_window, "context_source": self.context_source,
                "clipped_calls": clipped.get("calls", 0),
                "clipped_from": clipped.get("requested"),
                "clipped_to": [clipped["lowest"], clipped["highest"]] if clipped else None,
                "concurrency": self.concurrency, "concurrency_now": self._limit.limit,
                "concurrency_lowest": self._limit.lowest}

    def server_notes(self) -> list[str]:
        """Sentences for a report: a clipped budget, a concurrency that backed off."""
        fit = self.server_fit()
        notes = []
        if fit["clipped_calls"]:
            low, high = fit["clipped_to"]
            sent = f"{low}" if low == high else f"{low}-{high}"
            notes.append(f"max_tokens {fit['clipped_from']} was clipped to {sent} in "
                         f"{fit['clipped_calls']} call(s) to fit the server's context of "
                         f"{fit['context_window']} tokens (from {fit['context_source']})")
        if (backed_off := self._limit.describe()) is not None:
            notes.append(backed_off)
        return notes

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
        except httpx.TimeoutException as error:  # the same deadline as the caller's wait
            raise _Retryable(f"timeout: no complete reply within {self.timeout_s:g}s "
                             f"({type(error).__name__})") from error
        except httpx.TransportError as error:
            raise _Retryable(f"connection error ({type(error).__name__}: "
                             f"{self.redact(str(error))})") from error
        raw = redact_cut(text, RAW_BODY_CHARS, self._secrets) if text else None
        shown = repr(redact_cut(text, MESSAGE_BODY_CHARS, self._secrets))
        if status >= 400 and (problem := _server_problem(status, text, body, raw, shown,
                                                         self._secrets)):
            raise problem
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
