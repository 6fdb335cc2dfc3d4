"""The normalized E-VAds annotation record that every package of evads works on."""

from __future__ import annotations

from dataclasses import dataclass, field

from .categories import canonical_category
from .errors import AnnotationError
from .events import Event, render_metadata
from .task_labels import TASKS

SPLITS = ("test", "sft", "rl", "sample")


def video_file_name(path: str) -> str:
    """A video path's file name alone: annotation paths are relative to the authors' tree."""
    return path.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class EvadsRecord:
    """One question about one video, whatever schema it came from.

    ``metadata`` is the exact OCR/ASR text shown to the model (the authors'
    ``asr_input`` / ``meta_info``); ``events`` is its parsed form.
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
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise AnnotationError(f"task must be one of {list(TASKS)}, got {self.task!r}",
                                  field="task")
        if self.split not in SPLITS:
            raise AnnotationError(f"split must be one of {list(SPLITS)}, got {self.split!r}",
                                  field="split")
        object.__setattr__(self, "category", canonical_category(self.category))

    @property
    def dimension(self) -> str:
        return TASKS[self.task].dimension

    @property
    def video_name(self) -> str:
        return video_file_name(self.video_file)

    def metadata_text(self) -> str:
        """The metadata block, rendered from the events when the source gave none."""
        return self.metadata or render_metadata(self.category, self.duration, self.events)
