"""One video from metadata to its five questions: propose, check, select; more rounds for
the tasks still unfilled.

Round ``k``: the five role agents propose side by side for the missing tasks; every new
candidate goes through the form and grounding checks, then near-duplicate removal against
the candidates kept so far, then selection with the LLM checks. Nothing raises for bad
input: a video without metadata is ``unusable``, one left short of five tasks ``partial``
(each missing task says why), one whose calls failed ``retry`` (a rerun finishes it from the
cache).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from evads_tasks.core.annotations import CATEGORIES, TASK_CODES, canonical_category

from .agents import propose
from .checks import Deduplicator, form_check, ground
from .llm import LLM
from .records import (
    COMPLETE,
    PARTIAL,
    PENDING,
    RETRY,
    UNSELECTED,
    UNUSABLE,
    CandidateRecord,
    VideoMeta,
    VideoResult,
)
from .roles import ROLES
from .selection import select
from .settings import GeneratorSettings


def cheap_checks(candidate: CandidateRecord, meta: VideoMeta, settings: GeneratorSettings,
                 frames_shown: bool) -> None:
    """Form, then grounding; the first failure rejects the candidate."""
    failed = form_check(candidate, settings.language, settings.max_answer_units, frames_shown)
    candidate.checks["form"] = {"ok": failed is None,
                                "detail": failed[1] if failed else "task, language, length"}
    if failed:
        candidate.reject(*failed)
        return
    grounding = ground(candidate.evidence, meta.events, settings.grounding_window_s,
                       frames_shown)
    candidate.checks["grounding"] = grounding
    if not grounding["ok"]:
        candidate.reject("ungrounded", grounding["detail"])


def video_category(meta: VideoMeta, votes: Counter) -> str | None:
    """The annotations' category, else the roles' majority guess (unknown names: Others)."""
    if meta.category:
        return meta.category
    if not votes:
        return None
    guess = votes.most_common(1)[0][0]
    return guess if guess in CATEGORIES else "Others"


def missing_reason(task: str, candidates: list[CandidateRecord]) -> str:
    """Why no question of ``task`` was kept: the rejection counts of its candidates."""
    own = [c for c in candidates if c.task == task]
    if not own:
        return f"{task}: no candidate proposed"
    counts = Counter(c.rejection or c.status for c in own)
    return f"{task}: none of {len(own)} candidate(s) kept (" + ", ".join(
        f"{n} {code}" for code, n in counts.most_common()) + ")"


@dataclass
class Generator:
    """The per-video work, shared by every video of a run (thread-safe)."""

    llm: LLM
    dedup: Deduplicator
    settings: GeneratorSettings

    def process(self, meta: VideoMeta, frame_urls: list[str] | None = None) -> VideoResult:
        if meta.error:
            return VideoResult(meta, UNUSABLE, meta.category, [], [], {}, [meta.error])
        settings, shown = self.settings, bool(frame_urls)
        llm = self.llm.scoped()
        candidates: list[CandidateRecord] = []
        replies: list[dict] = []
        votes: Counter = Counter()
        selected: dict[str, str] = {}
        decided = True
        for round_ in range(1, settings.rounds + 1):
            missing = [task for task in TASK_CODES if task not in selected]
            if not missing:
                break
            with ThreadPoolExecutor(max_workers=len(ROLES)) as pool:
                proposed = list(pool.map(partial(
                    propose, llm, meta=meta, tasks=missing, round_=round_,
                    settings=settings, frame_urls=frame_urls), ROLES))
            fresh = []
            for result in proposed:
                replies.append(result.log)
                fresh += result.candidates
                if result.category:
                    votes[canonical_category(result.category)] += 1
                decided &= result.log["error_kind"] != "call_failed"
            for candidate in fresh:
                cheap_checks(candidate, meta, settings, shown)
            self.dedup.mark(fresh, earlier=candidates)
            candidates += fresh
            open_by_task = {task: [c for c in fresh if c.open and c.task == task]
                            for task in missing}
            picks, checked = select(llm, meta, open_by_task, settings)
            selected.update(picks)
            decided &= checked
        for candidate in candidates:
            if candidate.status == PENDING:  # a task asked of another round, or not asked
                candidate.status, candidate.reason = UNSELECTED, "not needed: task filled"
        missing = [task for task in TASK_CODES if task not in selected]
        status = COMPLETE if not missing else RETRY if not decided else PARTIAL
        problems = [missing_reason(task, candidates) for task in missing]
        failed = Counter(r["error_kind"] for r in replies if r["error_kind"])
        problems += [f"{n} role repl{'y' if n == 1 else 'ies'}: {kind}"
                     for kind, n in failed.items()]
        return VideoResult(meta, status, video_category(meta, votes), replies,
                           candidates, selected, problems, llm.stats.to_dict())
