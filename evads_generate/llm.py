"""Every LLM call of a run: the shared chat client, the on-disk reply cache, one gate.

Why: a generation run must be resumable after a kill without paying for any call twice, so
each reply (valid or not: a broken reply is still what the model said to that prompt) is
stored in the judge's cache file before it is used, keyed by model, endpoint, call kind,
body parameters and messages. A transport failure is not stored, so a rerun asks again.
The gate bounds the calls in flight across the generator's own calls and the judge's,
which have separate clients: ``--concurrency`` is the total the server sees.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter
from dataclasses import dataclass, field, fields

from evads_tasks.core.chat_client import ChatClient, ChatError
from evads_tasks.core.judge import (
    Judge,
    JudgeCache,
    JudgeRequest,
    JudgeResult,
    build_messages,
    cache_key,
)
from evads_tasks.core.tokens import count_tokens, message_tokens


class FatalLLMError(RuntimeError):
    """A failure no retry mends (bad key, wrong URL or model): the run stops."""


@dataclass(frozen=True)
class Reply:
    """One LLM reply, from the server or the cache; ``error`` when the call failed."""

    kind: str
    content: str | None
    error: str | None
    cached: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class CallStats:
    """What the run spent: network calls, cache hits, tokens and failures per call kind."""

    calls: Counter = field(default_factory=Counter)
    cached: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
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
                 concurrency: int) -> None:
        self.client, self.cache, self.judge = client, cache, judge
        self.gate = threading.BoundedSemaphore(concurrency)
        self.stats = CallStats()
        self._lock = threading.Lock()
        self._parent: LLM | None = None

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

    def ask(self, kind: str, messages: list[dict], **params: object) -> Reply:
        """One reply to ``messages`` (``params`` go into the request body verbatim)."""
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
        try:
            with self.gate:
                reply = self.client.complete(messages, **params)
        except ChatError as error:
            self._count(kind, calls=error.attempts, failed=1)
            if error.fatal:
                raise FatalLLMError(str(error)) from None
            return Reply(kind, None, str(error), False)
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
