"""Whether an evaluation set is held out: the videos and question ids it shares with training sets.

The published splits are disjoint by video (test 3,389 videos, SFT 376, RL 196, none shared),
so a score on the test split says how a model does on videos it never saw. A model scored on
the videos it was trained on says nothing of the kind; training (``evads_rl``) checks its
evaluation file against its training files with :func:`find_overlaps` before any step.
Videos are compared by the id the loaders give each record (the test split's ``video_id``; a
training row's video file stem, ``../videos/698.mp4`` -> ``698``), questions by question id.
Pure functions: records in, overlaps out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .record import EvadsRecord

SHOWN_IDS = 5  # ids named in a message; the count gives the rest


@dataclass(frozen=True)
class Overlap:
    """What an evaluation file shares with one training file."""

    evaluation: str  # how to name the evaluation file (e.g. "data.eval data/test.parquet")
    training: str  # how to name the training file
    videos: tuple[str, ...]  # shared video ids, sorted
    questions: tuple[str, ...]  # shared question ids, sorted

    def __bool__(self) -> bool:
        return bool(self.videos or self.questions)

    def describe(self, shown: int = SHOWN_IDS) -> str:
        """One line: the two files, the counts and the first ``shown`` ids of each."""
        parts = [f"{len(ids)} {kind} ({_first(ids, shown)})"
                 for kind, ids in (("video(s)", self.videos), ("question id(s)", self.questions))
                 if ids]
        return f"{self.evaluation} shares {' and '.join(parts)} with {self.training}"


def _first(ids: Sequence[str], shown: int) -> str:
    more = len(ids) - shown
    return ", ".join(ids[:shown]) + (f", ... {more} more" if more > 0 else "")


def find_overlap(evaluation: Sequence[EvadsRecord], training: Sequence[EvadsRecord],
                 evaluation_name: str = "the evaluation file",
                 training_name: str = "the training file") -> Overlap:
    """The videos and question ids ``evaluation`` shares with ``training``."""
    videos = {r.video_id.strip() for r in evaluation} & {r.video_id.strip() for r in training}
    questions = ({r.question_id.strip() for r in evaluation}
                 & {r.question_id.strip() for r in training})
    return Overlap(evaluation_name, training_name, tuple(sorted(videos)),
                   tuple(sorted(questions)))


def find_overlaps(evaluation: Sequence[EvadsRecord], evaluation_name: str,
                  training: Mapping[str, Sequence[EvadsRecord]]) -> list[Overlap]:
    """The overlap of the evaluation set with each training set (``{name: records}``), only
    those that share something."""
    found = (find_overlap(evaluation, records, evaluation_name, name)
             for name, records in training.items())
    return [overlap for overlap in found if overlap]
