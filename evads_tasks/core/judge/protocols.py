"""The two named judge protocols: what the judge is sent, with which call, and how its reply
is read. Nothing else differs between them: same tasks, data, cache and reports.

- ``evads`` (the default, fine offline): our own rubric wording under section headers, a
  system message, temperature 0, the strict five-level parser; an empty answer scores 0 by
  rule without a call.
- ``official``: the authors' evaluation script, read from the user's copy
  (:mod:`evads_tasks.core.official_script`): one ``user`` message ``JUDGE_PROMPT.format(...)``,
  their call parameters (``max_tokens``, ``temperature``, ``seed`` in the body, their
  ``timeout``), at least their number of tries with their pause between them, their parse
  rule (any float after the last ``Answer:``), and every answer sent, an empty one too, as
  their script sends it. The ``trace`` rubric (MG-GRPO's reasoning term) has no official
  prompt and keeps the evads one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType

from ..official_script import OfficialScript
from .api import JudgeRequest
from .parsing import parse_authors_score, parse_score
from .prompts import build_messages, official_messages

EVADS, OFFICIAL = "evads", "official"
PROTOCOLS = (EVADS, OFFICIAL)
DEFAULT_PROTOCOL = EVADS


@dataclass(frozen=True)
class JudgeProtocol:
    """How one protocol asks the judge and reads its answer (the ``answer`` rubric)."""

    name: str
    answer_messages: Callable[[JudgeRequest], list[dict[str, str]]]
    parse_answer: Callable[[str | None], float]
    call_params: Mapping[str, object] = field(hash=False)
    levels_only: bool = True      # every score is one of the five levels
    empty_by_rule: bool = True    # an empty answer scores 0 without a call
    default_model: str | None = None
    timeout_s: float | None = None       # None: $EVADS_JUDGE_TIMEOUT or its default
    min_tries: int | None = None         # the fewest tries per answer the protocol allows
    retry_delay_s: float | None = None   # a fixed pause between tries (else backoff)
    script: OfficialScript | None = None

    def messages(self, request: JudgeRequest) -> list[dict[str, str]]:
        """The chat messages for a request (the cache key covers exactly these)."""
        if request.rubric == "trace":
            return build_messages(request)
        return self.answer_messages(request)

    def by_rule(self, request: JudgeRequest) -> bool:
        """Whether ``request`` is scored 0 by rule without a judge call (an empty answer,
        under a protocol that says so): not a judged answer, for the error rate too."""
        return self.empty_by_rule and not request.answer.strip()

    def parse(self, request: JudgeRequest, reply: str | None) -> float:
        """The score in a reply; UnparseableReply when the protocol's rule finds none."""
        return parse_score(reply) if request.rubric == "trace" else self.parse_answer(reply)

    def cache_params(self) -> dict[str, object] | None:
        """What besides model, endpoint and messages changes a verdict: the call parameters
        and the parse rule. None for the evads protocol (its cache keys predate protocols)."""
        if self.name == EVADS:
            return None
        return {"protocol": self.name, **self.call_params}


EVADS_PROTOCOL = JudgeProtocol(
    name=EVADS, answer_messages=build_messages, parse_answer=parse_score,
    call_params=MappingProxyType({"temperature": 0}))


def official_protocol(script: OfficialScript) -> JudgeProtocol:
    """The official protocol with the prompt, call and tries of the user's copy."""
    call = script.judge_call
    return JudgeProtocol(
        name=OFFICIAL, answer_messages=partial(official_messages, script.judge_prompt),
        parse_answer=parse_authors_score, call_params=MappingProxyType(dict(call.params)),
        levels_only=False, empty_by_rule=False, default_model=call.model,
        timeout_s=call.timeout_s, min_tries=call.tries, retry_delay_s=call.retry_delay_s,
        script=script)
