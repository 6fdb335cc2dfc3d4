"""Exactly one question per task per video: grounded, answerable, not blind-answerable, and
spread over the roles.

Preference: for each task, the candidates that passed the cheap checks in proposal order,
with a first choice from a role no other task's first choice uses (tasks with the fewest
candidates choose first), then candidates of roles not yet first choices. The LLM checks
(answerability and blind, side by side) run in that order: ``lazy`` stops at the first
candidate that passes both (the fewest calls); ``all`` checks every candidate, then picks
the first that passed. A check that could not run (a failed call or judge) leaves the task
undecided for this run; a rerun asks again from the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from .checks import answerability, blind
from .llm import CONTEXT_LENGTH, LLM
from .records import SELECTED, UNSELECTED, CandidateRecord, VideoMeta
from .settings import GeneratorSettings


def preference_order(open_by_task: dict[str, list[CandidateRecord]]
                     ) -> dict[str, list[CandidateRecord]]:
    """Each task's candidates in the order they are tried (see the module doc)."""
    firsts: set[str] = set()
    ordered = {}
    for task in sorted(open_by_task, key=lambda t: len(open_by_task[t])):
        candidates = open_by_task[task]
        first = next((c for c in candidates if c.role not in firsts), candidates[0])
        firsts.add(first.role)
        rest = sorted((c for c in candidates if c is not first), key=lambda c: c.role in firsts)
        ordered[task] = [first, *rest]
    return ordered


def llm_checks(llm: LLM, meta: VideoMeta, candidate: CandidateRecord,
               settings: GeneratorSettings) -> bool | None:
    """Run answerability and blind side by side; True when both pass, None if undecided.

    A failure is recorded as the candidate's rejection (a prompt too long for the server's
    context first, then answerability, then blind).
    """
    with ThreadPoolExecutor(max_workers=1) as side:
        blind_check = side.submit(blind, llm, meta, candidate, settings)
        answerable = answerability(llm, meta, candidate, settings)
        guessed = blind_check.result()  # its exception (a FatalLLMError) raised here
    candidate.checks.update(answerable=answerable, blind=guessed)
    if overflow := next((o for o in (answerable, guessed)
                         if o.get("error_kind") == CONTEXT_LENGTH), None):
        candidate.reject(CONTEXT_LENGTH, overflow["error"])  # asking again cannot help
        return False
    if answerable.get("ok") is False:
        candidate.reject("unanswerable", answerable["detail"])
        return False
    if guessed.get("ok") is False:
        candidate.reject("blind_answerable", guessed["detail"])
        return False
    if answerable.get("ok") is None or guessed.get("ok") is None:
        error = answerable.get("error") or guessed.get("error")
        candidate.status, candidate.reason = UNSELECTED, f"not decided: {error}"
        return None
    return True


def select_task(llm: LLM, meta: VideoMeta, candidates: Sequence[CandidateRecord],
                settings: GeneratorSettings) -> tuple[CandidateRecord | None, bool]:
    """(the pick for one task, whether every needed check could run)."""
    if settings.check_mode == "all":
        with ThreadPoolExecutor(max_workers=max(1, len(candidates))) as pool:
            verdicts = list(pool.map(lambda c: llm_checks(llm, meta, c, settings),
                                     candidates))
        decided = all(v is not None for v in verdicts)
        pick = next((c for c, v in zip(candidates, verdicts, strict=True) if v), None)
    else:
        pick, decided = None, True
        for candidate in candidates:
            verdict = llm_checks(llm, meta, candidate, settings)
            if verdict is None:
                decided = False
                break
            if verdict:
                pick = candidate
                break
    for candidate in candidates:
        if candidate is pick:
            candidate.status, candidate.reason = SELECTED, "selected"
        elif candidate.open and candidate.status != UNSELECTED:
            candidate.status = UNSELECTED
            if pick is None:
                candidate.reason = "not checked: an earlier check could not run"
            elif "answerable" in candidate.checks:
                candidate.reason = f"passed its checks; {pick.id} was preferred"
            else:
                candidate.reason = f"not checked: {pick.id} filled the task first"
    return pick, decided


def select(llm: LLM, meta: VideoMeta, open_by_task: dict[str, list[CandidateRecord]],
           settings: GeneratorSettings) -> tuple[dict[str, str], bool]:
    """({task: picked candidate id}, every check could run), the tasks side by side."""
    ordered = preference_order({t: c for t, c in open_by_task.items() if c})
    if not ordered:
        return {}, True
    with ThreadPoolExecutor(max_workers=len(ordered)) as pool:
        results = dict(zip(ordered, pool.map(
            lambda task: select_task(llm, meta, ordered[task], settings), ordered),
            strict=True))
    picks = {task: pick.id for task, (pick, _) in results.items() if pick is not None}
    return picks, all(decided for _, decided in results.values())
