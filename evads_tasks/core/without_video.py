"""What "answerable without the video" means, and the file that lists such questions.

One definition for every place that asks: the modality audit's filter (``python -m
evads_tasks audit --export-filter``), the trainers' ``--exclude`` (``evads_rl``) and the Q&A
generator's blind check (``evads_generate.checks.blind``). A question is answerable without
the video when an answer given without it (text only: the ASR/metadata and the question;
blind: the question alone) gets a judge score of at least the threshold, 0.75 by default:
"accurate but generic" on the judge's scale, the level from which an answer counts as right.

The filter file is JSON (what ``audit --export-filter`` writes: the ids, the threshold, the
condition and the runs they came from); a plain text file with one question id per line
(``#`` starts a comment) is read too, for lists made elsewhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

THRESHOLD = 0.75
FILTER_KIND = "evads: questions answerable without the video"


def check_threshold(threshold: float, name: str = "threshold") -> float:
    """``threshold`` as a float in (0, 1]; ValueError naming ``name`` otherwise (at 0 every
    question would count as answerable)."""
    value = float(threshold)
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {threshold!r}")
    return value


def answerable_without_video(score: float | None, threshold: float = THRESHOLD) -> bool | None:
    """Whether an answer given without the video scoring ``score`` shows the question does
    not need the video; None when the answer was not scored (a failed judge decides
    nothing)."""
    if score is None:
        return None
    return score >= threshold


@dataclass(frozen=True)
class QuestionFilter:
    """The questions to leave out, and what says why (threshold, condition, source)."""

    question_ids: frozenset[str]
    path: Path
    threshold: float | None = None
    condition: str | None = None

    def describe(self) -> str:
        """The filter in words, for logs and run notes."""
        why = ("answerable without the video"
               + (f" ({self.condition} score >= {self.threshold:g})"
                  if self.threshold is not None and self.condition else ""))
        return f"{len(self.question_ids)} question id(s) {why}, from {self.path}"


def write_filter(path: str | os.PathLike, question_ids: Iterable[str], *, threshold: float,
                 condition: str, facts: Mapping) -> Path:
    """Write the filter file (JSON, ids sorted) and return its path; ``facts`` (the runs, the
    metric, counts) are recorded beside the ids."""
    path = Path(path)
    document = {"kind": FILTER_KIND, "threshold": threshold, "condition": condition,
                "definition": f"a {condition} answer (no video) scored >= {threshold:g} by "
                              "the judge", **facts,
                "question_ids": sorted(set(question_ids))}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                       encoding="utf-8")
    partial.replace(path)
    return path


def read_filter(path: str | os.PathLike) -> QuestionFilter:
    """A filter file: the JSON ``audit --export-filter`` writes, or one id per line.
    FileNotFoundError / ValueError naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"filter file {path} not found")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        return _json_filter(path, text)
    ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return QuestionFilter(frozenset(i for i in ids if i), path)


def _json_filter(path: Path, text: str) -> QuestionFilter:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    ids = document.get("question_ids")
    if not isinstance(ids, list) or not all(isinstance(i, (str, int)) for i in ids):
        raise ValueError(f"{path}: expected 'question_ids', a list of question ids (what "
                         "python -m evads_tasks audit --export-filter writes)")
    threshold = document.get("threshold")
    return QuestionFilter(frozenset(str(i) for i in ids), path,
                          float(threshold) if isinstance(threshold, (int, float)) else None,
                          document.get("condition"))
