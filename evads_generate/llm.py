"""Every LLM call of a run: the shared chat client, the on-disk reply cache, one gate.

Why: a generation run must be resumable after a kill without paying for any call twice, so
each reply (valid or not: a broken reply is still what the model said to that prompt) is
stored in the judge's cache file before it is used, keyed by model, endpoint, call kind,
body parameters and messages. A transport failure is not stored, so a rerun asks again.
The gate bounds the calls in flight across the generator's own calls and the judge's,
which have separate clients: ``--concurrency`` is the total the server sees. Structured
replies are asked for in the ``response_format`` mode the server accepts
(``evads_tasks.core.chat.response_format``: found once per run, kept in the cache file).
A context-length error fails that call alone (``Reply.error_kind`` ``context_length``).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, fields

from evads_tasks.core.chat.client import ChatClient, ChatError
from evads_tasks.core.chat.response_format import (
    CAPABILITY,
    StructuredOutput,
    messages_in_mode,
    response_format,
)
from evads_tasks.core.judge import (
    Judge,
    JudgeCache,
    JudgeRequest,
    JudgeResult,
    build_messages,
    cache_key,
)
from evads_tasks.core.tokens import count_tokens, message_tokens

CALL_FAILED, CONTEXT_LENGTH = "call_failed", "context_length"


class FatalLLMError(RuntimeError):
    """A failure no retry mends (bad key, wrong URL or model): the run stops."""


@dataclass(frozen=True)
class Reply:
    """One LLM reply, from the server or the cache; ``error`` when the call failed, and
    ``error_kind`` how: ``call_failed`` (a rerun asks again) or ``context_length`` (the
    prompt does not fit the server's context: asking again cannot help)."""

    kind: str
    content: str | None
    error: str | None
    cached: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error_kind: str | None = None


@dataclass
class CallStats:
    """What the run spent: network calls, cache hits, tokens and failures per call kind."""

    calls: Counter = field(default_factory=Counter)
    cached: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    # calls the server refused for a parameter it does not take (response_format)
    refused: Counter = field(default_factory=Counter)
    # as the server reported them, for the calls made (not for cache hits)
    prompt_tokens: Counter = field(default_factory=Counter)
    completion_tokens: Counter = field(default_factory=Counter)
    # counted here (core.tokens.count_tokens) for every reply used, cached ones too: what the
    # run costs from scratch, also against a server that reports no usage
    estimated_prompt_tokens: Counter = field(default_factory=Counter)
    estimated_completion_tokens: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {f.name: dict(getattr(self, f.name)) for f in fields(self)}


class LLM:
    """Cached, gated calls to the generator's model and to the judge."""

    def __init__(self, client: ChatClient, cache: JudgeCache | None, judge: Judge,
                 concurrency: int, response_format_mode: str = "json_schema") -> None:
        self.client, self.cache, self.judge = client, cache, judge
        self.gate = threading.BoundedSemaphore(concurrency)
        self.stats = CallStats()
        self._lock = threading.Lock()
        self._parent: LLM | None = None
        remembered = None if cache is None else cache.get_capability(
            client.model, client.endpoint, CAPABILITY)
        self.structured = StructuredOutput(response_format_mode, remembered,
                                           None if cache is None else self._remember)

    def _remember(self, mode: str, detail: str) -> None:
        self.cache.put_capability(self.client.model, self.client.endpoint, CAPABILITY, mode,
                                  detail)

    @property
    def name(self) -> str:
        return self.client.name

    def scoped(self) -> LLM:
        """The same client, cache, judge and gate, with its own counters (one video's),
        which also add up in this one's."""
        child = copy.copy(self)
        child.stats, child._lock, child._parent = CallStats(), threading.Lock(), self
        return child

    def _count(self, kind: str, **amounts: int) -> None:
        with self._lock:
            for counter, amount in amounts.items():
                getattr(self.stats, counter)[kind] += amount
        if self._parent is not None:
            self._parent._count(kind, **amounts)

    def ask(self, kind: str, messages: list[dict], *, max_attempts: int | None = None,
            **params: object) -> Reply:
        """One reply to ``messages`` (``params`` go into the request body verbatim;
        ``max_attempts`` overrides the client's tries)."""
        try:
            return self._cached_call(kind, messages, params, max_attempts)
        except ChatError as error:
            return self._failed(kind, error)

    def ask_structured(self, kind: str, messages: list[dict], schema: dict, name: str, *,
                       max_attempts: int | None = None, **params: object) -> Reply:
        """As :meth:`ask`, for a JSON reply of ``schema``, in the ``response_format`` mode
        the server accepts (a refusal moves the run to the next mode, see
        ``core/chat/response_format.py``)."""
        def send(mode: str) -> Reply:
            fmt = response_format(mode, schema, name)
            try:
                return self._cached_call(
                    kind, messages_in_mode(mode, messages, schema),
                    {**params, **({"response_format": fmt} if fmt else {})}, max_attempts)
            except ChatError as error:
                if error.refused:
                    self._count(kind, calls=error.attempts, refused=1)
                raise
        try:
            return self.structured.call(send)
        except ChatError as error:
            return self._failed(kind, error)

    def _failed(self, kind: str, error: ChatError) -> Reply:
        """A failed call as a Reply; a failure no retry mends (bad key, URL, model) stops
        the run, a context-length error fails this call alone."""
        self._count(kind, calls=error.attempts, failed=1)
        if error.fatal and error.overflow is None:
            raise FatalLLMError(str(error)) from None
        return Reply(kind, None, str(error), False,
                     error_kind=CONTEXT_LENGTH if error.overflow else CALL_FAILED)

    def _cached_call(self, kind: str, messages: list[dict], params: dict,
                     max_attempts: int | None) -> Reply:
        """The cached reply, else one call (stored before it is used); raises ChatError."""
        key = cache_key(self.client.model, self.client.endpoint,
                        [{"kind": kind, "params": json.dumps(params, sort_keys=True)},
                         *messages])
        sent = message_tokens(messages)
        if self.cache is not None and (hit := self.cache.get_reply(key)) is not None:
            raw, usage = hit
            self._count(kind, cached=1, estimated_prompt_tokens=sent,
                        estimated_completion_tokens=count_tokens(raw))
            return Reply(kind, raw, None, True, usage.get("prompt_tokens", 0),
                         usage.get("completion_tokens", 0))
        with self.gate:
            reply = self.client.complete_until(
                time.monotonic() + self.client.retry_budget_s, messages,
                max_attempts=max_attempts, **params)
        usage = {"prompt_tokens": reply.prompt_tokens or 0,
                 "completion_tokens": reply.completion_tokens or 0}
        if self.cache is not None:
            self.cache.put_reply(key, model=self.client.model, endpoint=self.client.endpoint,
                                 kind=kind, raw=reply.content, usage=usage)
        self._count(kind, calls=reply.attempts, estimated_prompt_tokens=sent,
                    estimated_completion_tokens=count_tokens(reply.content), **usage)
        return Reply(kind, reply.content, None, False, usage["prompt_tokens"],
                     usage["completion_tokens"])

    def score(self, request: JudgeRequest) -> JudgeResult:
        """The judge's verdict (its own cache and retries) inside the run's gate."""
        with self.gate:
            result = self.judge.judge(request)
        # an LLM judge's verdict, fresh or cached (the similarity judge and the empty-answer
        # rule call nothing): what judging costs from scratch
        asked = result.calls > 0 or result.cached
        fresh = not result.cached
        self._count("judge", calls=result.calls, cached=int(result.cached),
                    failed=int(result.score is None),
                    prompt_tokens=(result.prompt_tokens or 0) * fresh,
                    completion_tokens=(result.completion_tokens or 0) * fresh,
                    estimated_prompt_tokens=message_tokens(build_messages(request)) * asked,
                    estimated_completion_tokens=count_tokens(result.raw or "") * asked)
        return result
