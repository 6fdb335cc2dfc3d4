"""How many calls a client keeps in flight: up to its concurrency, fewer while a server queues.

Why: a server with fewer slots than our concurrency (llama.cpp and llama-cpp-python run one
request at a time unless told otherwise) queues the rest, so each call waits for those ahead
of it. With 16 in flight on one slot, the later calls pass their timeout while the server
goes on generating for them, and their retries queue behind that work: a run that takes
minutes at concurrency 1 never finishes at 16. Like lmms-eval's adaptive concurrency
(``models/model_utils/concurrency_control.py``), the limit shrinks when calls fail or slow
down and grows back while they are healthy; unlike it, the signal is each call's own
outcome against its timeout, because a judge and a generator call have no common target
latency:

- a call that timed out, was rate limited (429) or refused as overloaded (503), or took more
  than ``SLOW_SHARE`` of the timeout, halves the calls in flight (multiplicative decrease),
  once per generation: calls started before a decrease do not decrease it again;
- ``limit`` healthy calls in a row (under ``FAST_SHARE`` of the timeout) raise it by one,
  back up to the configured concurrency (additive increase).

A healthy server (every call well inside its timeout) never sees the limit move.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

logger = logging.getLogger(__name__)

SLOW_SHARE = 0.5   # a call slower than this share of the timeout means calls are queueing
FAST_SHARE = 0.25  # a call faster than this share of the timeout is healthy


@dataclass(frozen=True)
class Slot:
    """One acquired place: the generation it was taken in (see :class:`AdaptiveLimit`)."""

    generation: int


class AdaptiveLimit:
    """A semaphore whose size moves between 1 and ``maximum`` with the calls' outcomes."""

    def __init__(self, maximum: int, timeout_s: float, name: str = "") -> None:
        if maximum < 1 or timeout_s <= 0:
            raise ValueError("maximum must be >= 1 and timeout_s > 0")
        self.maximum, self.timeout_s, self.name = maximum, timeout_s, name
        self.limit = maximum
        self.lowest = maximum          # the smallest limit reached, for reports
        self.decreases = 0
        self._in_flight = 0
        self._generation = 0
        self._healthy = 0
        self._condition = threading.Condition()

    def acquire(self) -> Slot:
        with self._condition:
            while self._in_flight >= self.limit:
                self._condition.wait()
            self._in_flight += 1
            return Slot(self._generation)

    def release(self, slot: Slot, seconds: float | None, congested: bool = False) -> None:
        """Give the place back with the call's outcome: ``seconds`` it took (None when it
        failed for another reason), ``congested`` when it timed out or the server said it
        was overloaded (429, 503)."""
        with self._condition:
            self._in_flight -= 1
            slow = congested or (seconds is not None and seconds > SLOW_SHARE * self.timeout_s)
            if slow:
                self._healthy = 0
                if slot.generation == self._generation and self.limit > 1:
                    # half of what was really in flight (this call included), which may be
                    # well under a limit that was never reached
                    before = self.limit
                    self.limit = max(1, min(self.limit, self._in_flight + 1) // 2)
                    self.lowest = min(self.lowest, self.limit)
                    self.decreases += 1
                    self._generation += 1
                    reason = ("a call timed out or the server said it is overloaded"
                              if congested else
                              f"a call took {seconds:.0f} s of its {self.timeout_s:g} s timeout")
                    logger.warning("%s: calls are queueing on the server (%s): concurrency %d "
                                   "-> %d; match the concurrency to the server's slots",
                                   self.name, reason, before, self.limit)
            elif seconds is not None and seconds < FAST_SHARE * self.timeout_s:
                self._healthy += 1
                if self._healthy >= self.limit and self.limit < self.maximum:
                    self.limit += 1
                    self._healthy = 0
            self._condition.notify_all()

    def describe(self) -> str | None:
        """One sentence when the limit ever went down, else None."""
        if not self.decreases:
            return None
        return (f"concurrency backed off {self.decreases} time(s) because calls queued on the "
                f"server (lowest {self.lowest}, now {self.limit}, configured {self.maximum})")
