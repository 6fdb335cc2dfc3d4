"""Near-duplicate questions within one video, by the shipped sentence-embedding model.

Two questions are near-duplicates when their combined similarity (the similarity judge's
``s``: the all-MiniLM-L6-v2 cosine, rescaled because that English model finds unrelated
Chinese pairs ~0.5 alike, averaged with the character-level F1) reaches the threshold. The
earlier candidate (in role order, then proposal order) is kept; the later one is rejected
naming it. Questions are compared across tasks too: the benchmark wants five different
questions per video, not five labels.

The default threshold (0.6, ``--duplicate-threshold``) was set on the sample dataset: its
same-video questions of different tasks reach at most 0.49 (two that quote the same claim),
Chinese paraphrases of one question 0.57 to 0.86.
"""

from __future__ import annotations

from collections.abc import Sequence

from evads_tasks.core.judge.similarity import SimilarityJudge, char_f1, combined_similarity

from ..records import CandidateRecord


class Deduplicator:
    """Loads the embedding model once (on first use) and marks duplicates of a video."""

    def __init__(self, threshold: float, device: str = "cpu") -> None:
        self.threshold = threshold
        self._model = SimilarityJudge(device=device, progress=False)

    def similarities(self, questions: Sequence[str]) -> list[list[float]]:
        """The combined similarity of every pair (a symmetric matrix)."""
        vectors = self._model.embed(questions)
        cosines = vectors @ vectors.T
        return [[combined_similarity(float(cosines[i, j]), char_f1(a, b))
                 for j, b in enumerate(questions)] for i, a in enumerate(questions)]

    def mark(self, candidates: Sequence[CandidateRecord],
             earlier: Sequence[CandidateRecord] = ()) -> None:
        """Reject each open candidate whose question nearly repeats one kept before it: an
        ``earlier`` candidate (a previous round's, compared with but never re-marked) or an
        open one ahead of it in ``candidates``."""
        fresh = [c for c in candidates if c.open]
        kept_before = [c for c in earlier if c.open]
        if not fresh:
            return
        pool = [*kept_before, *fresh]
        matrix = self.similarities([c.question for c in pool]) if len(pool) > 1 else [[1.0]]
        kept = list(range(len(kept_before)))
        for i in range(len(kept_before), len(pool)):
            candidate = pool[i]
            best = max(kept, key=lambda k: matrix[i][k], default=None)
            score = matrix[i][best] if best is not None else 0.0
            if best is not None and score >= self.threshold:
                twin = pool[best]
                candidate.checks["duplicate"] = {"ok": False, "of": twin.id,
                                                 "similarity": round(score, 3)}
                candidate.reject("duplicate", f"near-duplicate of {twin.id} ({twin.role}, "
                                              f"{twin.task}): similarity {score:.2f}")
            else:
                kept.append(i)
                candidate.checks["duplicate"] = {
                    "ok": True, "closest": None if best is None else pool[best].id,
                    "similarity": round(score, 3)}
