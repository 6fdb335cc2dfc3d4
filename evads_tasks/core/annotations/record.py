"""The normalized E-VAds annotation record that every package of evads works on."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .categories import canonical_category
from .errors import AnnotationError
from .events import Event, render_metadata
from .task_labels import TASKS

SPLITS = ("test", "sft", "rl", "sample")
# Longest text accepted per field, in characters (0: no limit). A question or answer of a
# megabyte is a broken row, and would be sent to the model and the judge whole. The
# defaults leave wide room over the released data (RL split: answers <= 80 characters,
# clues <= 349, metadata <= 33,687 for the longest video).
LENGTH_LIMITS: dict[str, tuple[str, int, str]] = {
    # record field: (setting, default, the source columns it comes from)
    "question": ("EVADS_MAX_QUESTION_CHARS", 4_000, "question"),
    "answer": ("EVADS_MAX_ANSWER_CHARS", 4_000, "answer / reward_model.answer"),
    "clues": ("EVADS_MAX_EVIDENCE_CHARS", 8_000, "evidence / reward_model.verifier.clues"),
    "metadata": ("EVADS_MAX_METADATA_CHARS", 200_000,
                 "asr_ocr_meta / reward_model.verifier.meta_info / prompt"),
    "model_text": ("EVADS_MAX_METADATA_CHARS", 200_000, "asr_input"),
}


def video_file_name(path: str) -> str:
    """A video path's file name alone: annotation paths are relative to the authors' tree."""
    return path.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class EvadsRecord:
    """One question about one video, whatever schema it came from.

    ``metadata`` is the full time-aligned OCR/ASR text the judge reads (the test split's
    ``asr_ocr_meta``, the RL split's ``meta_info``, the metadata of an SFT prompt); ``events``
    is its parsed form. ``model_text`` is the text the model is given before the question
    when it is not that metadata (the test split's ``asr_input``, which may lack the OCR
    half); empty means the model gets the metadata. ``answer`` is the reference answer;
    ``reasoning_target`` the SFT target with its ``<think>`` trace.
    """

    question_id: str
    video_id: str
    video_file: str
    question: str
    answer: str
    task: str
    task_inferred: bool
    split: str
    clues: str = ""
    metadata: str = ""
    events: tuple[Event, ...] = ()
    category: str | None = None
    duration: float | None = None
    reasoning_target: str | None = None
    model_text: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise AnnotationError(f"task must be one of {list(TASKS)}, got {self.task!r}",
                                  field="task")
        if self.split not in SPLITS:
            raise AnnotationError(f"split must be one of {list(SPLITS)}, got {self.split!r}",
                                  field="split")
        object.__setattr__(self, "category", canonical_category(self.category))
        check_lengths(self)

    @property
    def dimension(self) -> str:
        return TASKS[self.task].dimension

    @property
    def video_name(self) -> str:
        return video_file_name(self.video_file)

    def metadata_text(self) -> str:
        """The metadata block, rendered from the events when the source gave none."""
        return self.metadata or render_metadata(self.category, self.duration, self.events)

    def model_input(self) -> str:
        """The text the model is given before the question (the test split's ``asr_input``)."""
        return self.model_text or self.metadata_text()


def length_limit(name: str) -> int:
    """The limit of a record field from its setting (``EVADS_MAX_*_CHARS``), else the default."""
    setting, default, _ = LENGTH_LIMITS[name]
    text = os.environ.get(setting, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise AnnotationError(f"{setting} must be a whole number of characters (0: no limit), "
                              f"got {text!r}")
    return value


def check_lengths(record: EvadsRecord) -> None:
    """AnnotationError naming the field (the loader adds file and row) when a text is longer
    than its limit."""
    for name, (setting, _, columns) in LENGTH_LIMITS.items():
        value = getattr(record, name, None)
        limit = length_limit(name)
        if limit and isinstance(value, str) and len(value) > limit:
            raise AnnotationError(
                f"{len(value):,} characters, over the limit of {limit:,} ({setting}; from "
                f"column {columns}): a broken row? raise {setting} if it is not",
                field=name)
