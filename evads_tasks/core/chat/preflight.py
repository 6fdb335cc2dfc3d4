"""One timed call before a long run: what a call costs on this server, and what the run will.

Why: a judge at ``max_tokens`` 8000 on a 2-core CPU server took minutes per call, each past
its 120 s timeout, and a six-answer run failed after 614 s with nothing said in advance.
Before a run that calls an LLM (the judge CLI, ``rescore``, the Q&A generator; their
``--dry-run`` too) one real call of the run is made alone and timed; its result is the run's,
not paid twice. From its seconds (and ``usage``, when the server sends it: tokens per
second) this module projects the run's wall time at the configured concurrency, both if the
server serves that many calls at once and if it serves one at a time (llama.cpp and
llama-cpp-python with one slot), and warns when a call would pass its timeout. Pure
functions; the callers make the call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .concurrency import SLOW_SHARE
from .server_fit import OVERFLOW_REASON


@dataclass(frozen=True)
class CallTiming:
    """One timed call: its seconds and HTTP attempts, its usage, or why it failed (``error``:
    no reply came). ``note``: what was wrong with a reply that came (unparseable, invalid):
    the timing holds, the run asks again as it would."""

    seconds: float
    attempts: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    note: str | None = None

    @property
    def tokens_per_s(self) -> float | None:
        """Completion tokens per second of the whole call (prompt processing included)."""
        if not self.completion_tokens or self.seconds <= 0:
            return None
        return self.completion_tokens / self.seconds


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 42 s, 6.4 min, 2.1 h."""
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Projection:
    """A run of ``calls`` calls like the timed one, at ``concurrency`` in flight."""

    calls: int
    concurrency: int
    per_call_s: float

    @property
    def parallel_s(self) -> float:
        """If the server serves ``concurrency`` calls at once as fast as it served one."""
        return math.ceil(self.calls / max(self.concurrency, 1)) * self.per_call_s

    @property
    def serial_s(self) -> float:
        """If the server serves one call at a time."""
        return self.calls * self.per_call_s


def preflight_warnings(timing: CallTiming, concurrency: int, timeout_s: float,
                       timeout_setting: str) -> list[str]:
    """What the timed call says will go wrong (``timeout_setting``: how a user raises the
    timeout, e.g. ``EVADS_JUDGE_TIMEOUT``)."""
    if timing.error is not None:
        if timing.error.startswith("timeout") or "timeout:" in timing.error:
            return [f"the timed call did not finish within the {timeout_s:g} s timeout: every "
                    f"call of the run may time out. Raise {timeout_setting}, lower max_tokens "
                    "or use a faster server"]
        if OVERFLOW_REASON in timing.error:
            return [f"the timed call's prompt does not fit the server's context "
                    f"({timing.error[:300]}): every call as long fails, whatever the retries. "
                    "Serve the model with a longer context"]
        return [f"the timed call failed ({timing.error[:300]}); the run retries as usual"]
    warnings = []
    if timing.seconds > SLOW_SHARE * timeout_s:
        warnings.append(f"one call alone took {duration(timing.seconds)}, over half of the "
                        f"{timeout_s:g} s timeout: a slower call will time out. Raise "
                        f"{timeout_setting} or lower max_tokens")
    queued = concurrency * timing.seconds
    if concurrency > 1 and queued > timeout_s:
        warnings.append(f"on a server that runs one request at a time (llama.cpp's "
                        f"llama-server with one slot, llama-cpp-python), the last of "
                        f"{concurrency} calls in flight would wait ~{duration(queued)}, past the "
                        f"{timeout_s:g} s timeout: set the concurrency to the server's slots "
                        "(the client backs off when calls queue, after the first timeouts)")
    return warnings


def preflight_lines(target: str, timing: CallTiming, calls: int, concurrency: int,
                    timeout_s: float, timeout_setting: str) -> list[str]:
    """The preflight's report: the call, the projection for ``calls`` calls, warnings."""
    if timing.error is not None:
        lines = [f"preflight: one timed call to {target} failed after "
                 f"{duration(timing.seconds)} ({timing.attempts} attempt(s))"]
    else:
        usage = ""
        if timing.prompt_tokens is not None and timing.completion_tokens is not None:
            usage = (f" ({timing.prompt_tokens} prompt + {timing.completion_tokens} "
                     "completion tokens")
            rate = timing.tokens_per_s
            usage += f", {rate:.1f} completion tokens/s)" if rate else ")"
        lines = [f"preflight: one timed call to {target}: {duration(timing.seconds)}{usage}"]
        if calls > 0:
            projection = Projection(calls, concurrency, timing.seconds)
            lines.append(
                f"  projected for {calls} call(s) one at a time: ~{duration(projection.serial_s)}"
                if concurrency == 1 else
                f"  projected for {calls} call(s) at concurrency {concurrency}: "
                f"~{duration(projection.parallel_s)} if the server serves {concurrency} calls "
                f"at once, ~{duration(projection.serial_s)} if it serves one at a time")
    if timing.note:
        lines.append(f"  its reply: {timing.note[:300]} (the run asks again)")
    lines += [f"  WARNING: {warning}" for warning in
              preflight_warnings(timing, concurrency, timeout_s, timeout_setting)]
    return lines
