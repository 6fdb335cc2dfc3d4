"""Judge a task's answers ``$EVADS_JUDGE_CONCURRENCY`` at a time, whatever lmms-eval's threads.

Why: lmms-eval calls ``process_results`` one answer at a time on ``--process_docs_parallel``
threads (4 unless the user passes the flag, in every launch mode), and a judge call blocks
its thread, so a judge that serves 16 calls at once would get 4.

How, with lmms-eval's public hooks only: the task's filter pipeline ends with
:class:`NumberResponses`, which lmms-eval applies to all of a task's responses (on each
rank, before any ``process_results``) and which tags each response with its place in the
task's instance list. Instance ``k`` of a rank is the doc ``offset + rank + k * world_size``
(lmms-eval builds one instance per doc, in doc order), so the first ``process_results``
call, which knows its doc and its response's place, fixes the doc of every place: from then
on all the task's answers are judged in order on a pool of ``$EVADS_JUDGE_CONCURRENCY``
threads (one: strictly one after the other) and each ``process_results`` call waits for its
own verdict. A call whose doc is not
the one predicted for its place is judged directly and ends the look-ahead: verdicts stay
right, only the concurrency is lost. Nothing is judged ahead under ``--predict_only``, where
lmms-eval calls no ``process_results``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

logger = logging.getLogger(__name__)

# judge(doc, response) -> whatever process_results returns for it
JudgeOne = Callable[[dict, str], object]
# () -> (the judge function, how many answers to judge at once): made once per task
Judging = Callable[[], tuple[JudgeOne, int]]


def world_size() -> int:
    """The number of ranks lmms-eval shards the docs over (1 when not distributed)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


class NumberedResponse(str):
    """A response that knows its place among its task's responses. Pickled and logged as
    the plain string it is (lmms-eval gathers samples across ranks and writes them)."""

    batch: ResponseBatch
    place: int

    def __new__(cls, text: str, batch: ResponseBatch, place: int) -> NumberedResponse:
        response = super().__new__(cls, text)
        response.batch, response.place = batch, place
        return response

    def __reduce__(self):
        return str, (str(self),)

    def strip(self, chars: str | None = None) -> NumberedResponse:
        """Still numbered: lmms-eval strips every response before ``process_results``."""
        return NumberedResponse(str.strip(self, chars), self.batch, self.place)


class ResponseBatch:
    """One task's responses on this rank, judged ahead once a doc anchors their places."""

    def __init__(self, responses: list[str], docs) -> None:
        self.responses, self._task_docs = responses, docs
        self.docs: list[dict] = []
        self._lock = threading.Lock()
        self._futures: dict[int, Future] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._doc_at: Callable[[int], int] | None = None
        self._judge: JudgeOne | None = None
        self._stopped = False

    def _index(self, doc: dict) -> int | None:
        index = doc.get("doc_index")
        return index if isinstance(index, int) else None

    def _start(self, doc: dict, place: int, concurrency: int) -> None:
        """Fix every place's doc from this (doc, place) pair and queue every answer."""
        index = self._index(doc)
        if index is None:
            self._stopped = True
            return
        step = world_size()
        # the task's docs as plain dicts, in one conversion (a datasets row access each
        # costs far more, thousands of times over)
        docs = self._task_docs
        self.docs = docs.to_list() if hasattr(docs, "to_list") else list(docs)
        self._doc_at = lambda other: index + (other - place) * step
        self._pool = ThreadPoolExecutor(max_workers=concurrency,
                                        thread_name_prefix="evads-judge")
        order = sorted(range(len(self.responses)), key=lambda other: abs(other - place))
        for other in order:
            position = self._doc_at(other)
            if 0 <= position < len(self.docs):
                # stripped as lmms-eval strips a response before process_results
                self._futures[other] = self._pool.submit(
                    self._judge, self.docs[position], str(self.responses[other]).strip())
        self._pool.shutdown(wait=False)

    def verdict(self, doc: dict, response: NumberedResponse, judging: Judging) -> object:
        """What the task's judge function gives for ``(doc, response)``: taken from the pool
        when the look-ahead predicted this doc for the response's place, else judged here.
        ``judging`` is asked once, at the task's first answer (reading the settings for
        every answer would cost more than a cached verdict)."""
        place = response.place
        with self._lock:
            if self._judge is None:
                self._judge, concurrency = judging()
                self._start(doc, place, concurrency)
            future = None if self._stopped else self._futures.get(place)
            if future is not None and self._doc_at(place) != self._index(doc):
                logger.warning("E-VAds judge look-ahead stopped: answer %d is not the doc "
                               "its place predicts; judging one answer at a time", place)
                self._stop()
                future = None
        return self._judge(doc, str(response)) if future is None else future.result()

    def _stop(self) -> None:
        self._stopped = True
        for future in self._futures.values():
            future.cancel()


class NumberResponses:
    """The last step of the E-VAds tasks' ``none`` filter: responses are passed on as they
    are, each tagged with its place (see the module docstring). lmms-eval calls a filter
    step's ``apply(resps, docs)`` and nothing else (its ``Filter`` base class is not
    imported, so that re-judging a run without lmms-eval stays light)."""

    def apply(self, resps: Iterable, docs) -> list[NumberedResponse]:
        responses = [response if isinstance(response, str) else str(response)
                     for response in resps]
        batch = ResponseBatch(responses, docs)
        return [NumberedResponse(text, batch, place) for place, text in enumerate(responses)]
